package rpc

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/sessiond/sessiond/engine"
)

// AuthenticateParams are the params of authenticate: [login, password].
type AuthenticateParams struct {
	// Login is the account's username.
	Login string `json:"login"`
	// Password is the account's password.
	Password string `json:"password"`
}

// LabelValue is NetX's LabelValueBean.
type LabelValue struct {
	// Label names the preference; TickleTime is reserved for keeping the session alive.
	Label string `json:"label" jsonschema:"minLength=1,maxLength=256"`
	// Value is the preference's value.
	Value string `json:"value" jsonschema:"maxLength=65500"`
}

// SetUserPreferenceParams are the params of setUserPreference: [sessionKey, {label, value}].
type SetUserPreferenceParams struct {
	// SessionKey is the caller's session key (or authToken).
	SessionKey string `json:"sessionKey"`
	// Bean is the label and value to set.
	Bean LabelValue `json:"bean"`
}

// GetUserPreferenceParams are the params of getUserPreference: [sessionKey, label].
type GetUserPreferenceParams struct {
	// SessionKey is the caller's session key (or authToken).
	SessionKey string `json:"sessionKey"`
	// Label names the preference.
	Label string `json:"label" jsonschema:"minLength=1,maxLength=256"`
}

// LogoutParams are the params of logout: [sessionKey].
type LogoutParams struct {
	// SessionKey is the session key to end.
	SessionKey string `json:"sessionKey"`
}

var netxMethods = []Method{
	method(Method{
		Name: "authenticate", Family: "netx", Auth: AuthCredentials, Positional: []string{"login", "password"}, FailsInResult: true,
		Summary:     "Log in (NetX) and get a session key.",
		Description: `Returns the session key, or "-1" when authentication fails for any reason (wrong credentials, locked account, throttled address, session cap, a store that does not answer). The key expires after user.sessionDuration minutes without use.`,
	}, func(ctx context.Context, s *Service, p *AuthenticateParams, client engine.Client) (string, error) {
		key, err := s.eng.Authenticate(ctx, p.Login, p.Password, client)
		var le *engine.LimitError
		switch {
		case err == nil:
			return key, nil
		case errors.Is(err, context.Canceled):
			return "", err // its client went away: the server logs it, and no one reads a reply
		case errors.Is(err, engine.ErrInvalidCredentials), errors.Is(err, engine.ErrLoginThrottled), errors.As(err, &le):
		case errors.Is(err, engine.ErrUnavailable):
			// NetX's contract answers "-1" all the same. The stores log an outage once (Redis
			// not answering, a disk nearly full), and /health shows it: a line a login would
			// bury that.
			s.log.Debug(`rpc: authenticate answered "-1": the store is unavailable`, "client", client.Address, "err", err)
		default:
			logUnknown(s.log, err, "method", "authenticate", "client", client.Address)
		}
		return "-1", nil
	}),
	method(Method{
		Name: "setUserPreference", Family: "netx", Auth: AuthToken, TokenField: "sessionKey", Positional: []string{"sessionKey", "bean"}, Quick: true, NeverWaits: true,
		Summary:     "Set a user preference; the label TickleTime keeps the session alive instead.",
		Description: "Returns true, or false when the session key is not valid. A TickleTime tickle resets the idle clock but not the inactivity clock, and is not stored.",
		Errors:      []int{CodeTooManyPreferences},
	}, func(ctx context.Context, s *Service, p *SetUserPreferenceParams, _ engine.Client) (bool, error) {
		if p.Bean.Label != engine.TickleLabel && InEventLoop(ctx) {
			return false, ErrWouldWait // a write
		}
		ok, err := s.eng.SetUserPreference(ctx, p.SessionKey, p.Bean.Label, p.Bean.Value)
		if err != nil {
			return ok, inBean(err)
		}
		return ok, nil
	}),
	method(Method{
		Name: "getUserPreference", Family: "netx", Auth: AuthToken, TokenField: "sessionKey", Positional: []string{"sessionKey", "label"}, Quick: true,
		Summary:        "Get a user preference's value, or null when it is not set.",
		NullableResult: true,
		Errors:         tokenErrors,
	}, func(ctx context.Context, s *Service, p *GetUserPreferenceParams, _ engine.Client) (*string, error) {
		v, ok, err := s.eng.GetUserPreference(ctx, p.SessionKey, p.Label)
		if err != nil || !ok {
			return nil, err
		}
		return &v, nil
	}),
	method(Method{
		Name: "logout", Family: "netx", Auth: AuthToken, TokenField: "sessionKey", Positional: []string{"sessionKey"},
		Summary: "End a session key (NetX). Always returns true.",
	}, func(ctx context.Context, s *Service, p *LogoutParams, _ engine.Client) (bool, error) {
		if err := s.eng.Logout(ctx, p.SessionKey); err != nil {
			return false, err
		}
		return true, nil
	}),
}

// DiscoverParams: rpc.discover takes no params.
type DiscoverParams struct{}

var discoveryMethods = []Method{
	method(Method{
		Name: "rpc.discover", Family: "discovery", Auth: AuthNone, Quick: true,
		Summary: "Return the OpenRPC document describing every method.",
	}, func(_ context.Context, s *Service, _ *DiscoverParams, _ engine.Client) (json.RawMessage, error) {
		return s.discover, nil
	}),
}

// inBean names a validation error's field as a member of setUserPreference's bean, where
// label and value are (a function of its own, so the error variable escapes only on errors).
func inBean(err error) error {
	var ve *engine.ValidationError
	if errors.As(err, &ve) {
		return &engine.ValidationError{Field: "bean." + ve.Field, Reason: ve.Reason}
	}
	return err
}
