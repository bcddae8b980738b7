package engine

import (
	"context"
	"errors"
)

// TickleLabel is NetX's reserved preference label: setting it keeps a session alive.
const TickleLabel = "TickleTime"

func validatePreference(label, value string) error {
	if err := validateLength("label", label, 1, MaxLabelBytes); err != nil {
		return err
	}
	return validateLength("value", value, 0, MaxPreferenceBytes)
}

// SetUserPreference is NetX's setUserPreference. It returns false (and no error) when the
// session key is not valid. Label TickleTime is a tickle: it resets the idle clock but not
// the inactivity clock, extends nothing when user.sessionNoTickle is set, and is not stored.
// Any other label is stored for the key's user and counts as activity.
func (e *Engine) SetUserPreference(ctx context.Context, sessionKey, label, value string) (bool, error) {
	if err := validatePreference(label, value); err != nil {
		return false, err
	}
	if label == TickleLabel {
		return e.tickle(ctx, sessionKey)
	}
	c, err := e.authorize(ctx, sessionKey, true)
	if errors.Is(err, ErrInvalidToken) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	err = e.store.SetPreference(ctx, c.session.UserKey(), label, value, e.cfg.MaxPreferencesPerUser)
	if errors.Is(err, ErrAccountNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (e *Engine) tickle(ctx context.Context, sessionKey string) (bool, error) {
	if e.cfg.NetX.NoTickle {
		// The key must still be valid for the answer to be true, but nothing is extended.
		parsed, err := ParseToken(sessionKey)
		if err != nil {
			return false, nil
		}
		_, err = e.store.SessionByTokenHash(ctx, parsed.Hash, e.clock.Now())
		if errors.Is(err, ErrSessionNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	err := e.keepAlive(ctx, sessionKey, false)
	if errors.Is(err, ErrInvalidToken) {
		return false, nil
	}
	return err == nil, err
}

// GetUserPreference is NetX's getUserPreference: the value and true, or false when the
// label is not set (TickleTime is never stored). An invalid key is ErrInvalidToken.
func (e *Engine) GetUserPreference(ctx context.Context, sessionKey, label string) (string, bool, error) {
	if err := validateLength("label", label, 1, MaxLabelBytes); err != nil {
		return "", false, err
	}
	c, err := e.authorize(ctx, sessionKey, true)
	if err != nil {
		return "", false, err
	}
	return e.store.GetPreference(ctx, c.session.UserKey(), label)
}
