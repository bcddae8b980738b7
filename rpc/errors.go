package rpc

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/sessiond/sessiond/engine"
)

// Application error codes. 450, 12031 and 84 are FairCom's; the others are sessiond's own.
// Every application error carries data.reason, a stable machine-readable name.
const (
	CodeInvalidCredentials   = 450
	CodeInvalidAuthToken     = 12031
	CodeSessionLimit         = 84
	CodePermanentSessionsOff = 1001
	CodePermanentNotAllowed  = 1002
	CodePermissionDenied     = 1003
	CodeAccountExists        = 1004
	CodeAccountNotFound      = 1005
	CodeLastAdmin            = 1006
	CodeCurrentPasswordWrong = 1007
	CodeLoginThrottled       = 1008
	CodeTooManyPreferences   = 1009
	CodeStoreUnavailable     = 1010
	invalidAuthTokenMessage  = "'authToken' does not match any existing session. Use a valid 'authToken' or use 'createSession' to create a valid 'authToken'."
	sessionLimitMessage      = "Maximum number of sessions exceeded."
)

// ErrorCode documents one application error: it is the single table behind the mapping
// below, the README's error table and the errors of the OpenRPC document.
type ErrorCode struct {
	Code    int
	Reason  string
	Message string
	// When says when the error happens, for documentation.
	When string
	// match reports whether an engine error is this one.
	match func(error) bool
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// ErrorCodes is every application error, in matching order.
var ErrorCodes = []ErrorCode{
	{CodeInvalidCredentials, "invalidCredentials", "Not able to validate the credentials for user [NAME].",
		"createSession: unknown user, wrong password or locked account (one answer for all).", is(engine.ErrInvalidCredentials)},
	{CodeInvalidAuthToken, "invalidAuthToken", invalidAuthTokenMessage,
		"An authToken or session key that is unknown, expired, revoked or malformed.", is(engine.ErrInvalidToken)},
	{CodeSessionLimit, "sessionLimit", sessionLimitMessage,
		"A session cap is reached; data.limit names maxJsonApiSessions, maxJsonApiSessionsPerIpAddress or maxJsonApiSessionsPerUsername.",
		func(err error) bool { var le *engine.LimitError; return errors.As(err, &le) }},
	{CodePermanentSessionsOff, "permanentSessionsDisabled", "Permanent sessions are disabled on this server.",
		"createSession with permanentSession: true while enablePermanentJsonApiSessions is false.", is(engine.ErrPermanentDisabled)},
	{CodePermanentNotAllowed, "permanentSessionNotAllowed", "A temporary session cannot become permanent.",
		"alterSession with permanentSession: true on a temporary session.", is(engine.ErrPermanentNotAllowed)},
	{CodePermissionDenied, "permissionDenied", "The account is not permitted to do this.",
		"An account without the admin role asks for another account's data or an admin-only method.", is(engine.ErrPermissionDenied)},
	{CodeAccountExists, "accountExists", "An account with this username already exists.",
		"createAccount with a username that is taken (usernames match case-insensitively).", is(engine.ErrAccountExists)},
	{CodeAccountNotFound, "accountNotFound", "No account has this username.",
		"alterAccount on an unknown username.", is(engine.ErrAccountNotFound)},
	{CodeLastAdmin, "lastAdmin", "The last admin account cannot be dropped or demoted.",
		"dropAccounts or alterAccount would leave no account with the admin role.", is(engine.ErrLastAdmin)},
	{CodeCurrentPasswordWrong, "currentPasswordWrong", "currentPassword is missing or wrong.",
		"An account changing its own password without the right currentPassword.", is(engine.ErrCurrentPasswordWrong)},
	{CodeLoginThrottled, "loginThrottled", "Too many failed logins from this address; try again later.",
		"createSession from a client address with too many recent failed logins.", is(engine.ErrLoginThrottled)},
	{CodeTooManyPreferences, "tooManyPreferences", "The user has too many preferences.",
		"setUserPreference with a new label when the user already has the maximum number.", is(engine.ErrTooManyPreferences)},
	{CodeStoreUnavailable, "storeUnavailable", "The session store is unavailable; retry later.",
		"The store did not answer in time (Redis), or refuses changes while the disk under --data is nearly full (reads and token checks go on; changes are taken again by themselves once space is freed). A change is applied whole or not at all (a revocation or account drop of many sessions goes in steps of 4,096, 1,000 through Redis, and the steps before stay done); if the reply was lost it may have been applied, so check before retrying a create.", is(engine.ErrUnavailable)},
}

// errorData is the data member of application errors.
type errorData struct {
	Reason string `json:"reason"`
	Field  string `json:"field,omitempty"`
	Limit  string `json:"limit,omitempty"`
	Max    int    `json:"max,omitempty"`
}

// toWireError maps any error of a method to the JSON-RPC error sent to the client. Errors
// it does not know are logged and sent as -32603 without detail.
func toWireError(log *slog.Logger, err error) *jsonrpc2.Error {
	if wire := knownWireError(err); wire != nil {
		return wire
	}
	logUnknown(log, err)
	return errInternal()
}

// logUnknown logs an error that goes out as -32603: as an error, unless the call was given
// up because its client went away (its context cancelled: a closed connection), which
// happens every day, or timed out.
func logUnknown(log *slog.Logger, err error, attrs ...any) {
	attrs = append(attrs, "err", err)
	switch {
	case errors.Is(err, context.Canceled):
		log.Debug("rpc: call abandoned: its client went away", attrs...)
	case errors.Is(err, context.DeadlineExceeded):
		log.Info("rpc: call abandoned: it timed out", attrs...)
	default:
		log.Error("rpc: internal error", attrs...)
	}
}

// knownWireError is the wire error of a method's error, or nil for an error it does not know.
// It is the one place where engine errors become wire codes.
func knownWireError(err error) *jsonrpc2.Error {
	var wire *jsonrpc2.Error
	if errors.As(err, &wire) {
		return wire
	}
	var ve *engine.ValidationError
	if errors.As(err, &ve) {
		return InvalidParams(ve.Field, ve.Reason)
	}
	for _, c := range ErrorCodes {
		if !c.match(err) {
			continue
		}
		e := &jsonrpc2.Error{Code: int64(c.Code), Message: c.Message}
		data := errorData{Reason: c.Reason}
		var ce *engine.CredentialsError
		var le *engine.LimitError
		switch {
		case errors.As(err, &ce):
			e.Message = credentialsMessage(ce.Username)
		case errors.As(err, &le):
			data.Limit, data.Max = le.Limit, le.Max
		}
		e.SetError(data)
		return e
	}
	return nil
}

// invalidTokenError is the wire error of engine.ErrInvalidToken, taken from the table, for the
// one token the params decoder refuses itself: an optional token given empty.
func invalidTokenError() *jsonrpc2.Error {
	return toWireError(slog.New(slog.DiscardHandler), engine.ErrInvalidToken)
}

func credentialsMessage(username string) string {
	return "Not able to validate the credentials for user [" + username + "]."
}
