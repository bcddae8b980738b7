package memstore

import (
	"context"

	"github.com/sessiond/sessiond/engine"
)

// SetPreference stores value under label for the user. It returns engine.ErrAccountNotFound
// if the account does not exist and engine.ErrTooManyPreferences if label is new and the
// user already has maxPerUser labels; maxPerUser <= 0 means no limit.
func (s *Store) SetPreference(ctx context.Context, userKey, label, value string, maxPerUser int) error {
	if err := s.writable(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.accounts[userKey]; !ok {
		return engine.ErrAccountNotFound
	}
	labels := s.prefs[userKey]
	old, exists := labels[label]
	switch {
	case exists && old == value:
		return nil
	case !exists && maxPerUser > 0 && len(labels) >= maxPerUser:
		return engine.ErrTooManyPreferences
	}
	if err := s.commit(&Batch{Preferences: []Preference{{UserKey: userKey, Label: label, Value: value}}}); err != nil {
		return err
	}
	s.putPreference(userKey, label, value)
	return nil
}

// GetPreference returns the value stored under label and true, or "" and false.
func (s *Store) GetPreference(ctx context.Context, userKey, label string) (string, bool, error) {
	if err := s.readable(ctx); err != nil {
		return "", false, err
	}
	defer s.mu.RUnlock()
	value, ok := s.prefs[userKey][label]
	return value, ok, nil
}

func (s *Store) putPreference(userKey, label, value string) {
	labels := s.prefs[userKey]
	if labels == nil {
		labels = make(map[string]string)
		s.prefs[userKey] = labels
	}
	labels[label] = value
}
