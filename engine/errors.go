package engine

import (
	"errors"
	"fmt"
)

// Sentinel errors. The rpc package maps each to one wire code; match them with errors.Is.
var (
	// ErrInvalidCredentials: unknown user, wrong password or locked account, one answer for all.
	ErrInvalidCredentials = errors.New("not able to validate the credentials")
	// ErrInvalidToken: an authToken that is unknown, expired, revoked or malformed.
	ErrInvalidToken = errors.New("authToken does not match any existing session")
	// ErrLoginThrottled: too many failed logins from this client address recently.
	ErrLoginThrottled = errors.New("too many failed logins from this address; try again later")
	// ErrPermanentDisabled: permanent sessions need enablePermanentJsonApiSessions.
	ErrPermanentDisabled = errors.New("permanent sessions are disabled (enablePermanentJsonApiSessions is false)")
	// ErrPermanentNotAllowed: a temporary session can never become permanent.
	ErrPermanentNotAllowed = errors.New("a temporary session cannot become permanent")
	// ErrPermissionDenied: the caller's account may not do this.
	ErrPermissionDenied = errors.New("the account is not permitted to do this")
	// ErrAccountExists: createAccount with a username already taken (case-insensitively).
	ErrAccountExists = errors.New("an account with this username already exists")
	// ErrAccountNotFound: no account with this username.
	ErrAccountNotFound = errors.New("no account with this username")
	// ErrLastAdmin: the change would leave no admin account.
	ErrLastAdmin = errors.New("the last admin account cannot be dropped or demoted")
	// ErrCurrentPasswordWrong: an account changing its own password gave a wrong or no
	// currentPassword.
	ErrCurrentPasswordWrong = errors.New("currentPassword is missing or wrong")
	// ErrSessionNotFound: a store found no live session. The engine turns it into
	// ErrInvalidToken where a token was presented.
	ErrSessionNotFound = errors.New("session not found")
	// ErrTooManyPreferences: the per-user preference limit is reached.
	ErrTooManyPreferences = errors.New("too many preferences for this user")
	// ErrUnavailable: the store cannot be reached; the request may be retried.
	ErrUnavailable = errors.New("the session store is unavailable")
)

// Names of the session caps, as in jsonActionApiDefaults.
const (
	LimitMaxSessions           = "maxJsonApiSessions"
	LimitMaxSessionsPerAddress = "maxJsonApiSessionsPerIpAddress"
	LimitMaxSessionsPerUser    = "maxJsonApiSessionsPerUsername"
)

// CredentialsError is ErrInvalidCredentials for a given username: the same answer whether the
// user is unknown, the password wrong or the account locked.
type CredentialsError struct{ Username string }

func (e *CredentialsError) Error() string {
	return ErrInvalidCredentials.Error() + " for user " + e.Username
}

// Is makes errors.Is(err, ErrInvalidCredentials) true.
func (e *CredentialsError) Is(target error) bool { return target == ErrInvalidCredentials }

// LimitError says a session cap was reached.
type LimitError struct {
	// Limit is one of LimitMaxSessions, LimitMaxSessionsPerAddress, LimitMaxSessionsPerUser.
	Limit string
	// Max is the configured value of that cap.
	Max int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("maximum number of sessions exceeded (%s = %d)", e.Limit, e.Max)
}

// ValidationError says which request field is invalid and why.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
