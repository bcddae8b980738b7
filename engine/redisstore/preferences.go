package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/engine"
)

// SetPreference stores value under label for the user. It returns engine.ErrAccountNotFound
// if the account does not exist and engine.ErrTooManyPreferences if label is new and the
// user already has maxPerUser labels; maxPerUser <= 0 means no limit. The checks and the
// write are one script, so the limit holds across nodes.
func (s *Store) SetPreference(ctx context.Context, userKey, label, value string, maxPerUser int) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	res, err := scriptSetPreference.Run(ctx, s.rdb, []string{s.keys.account(userKey), s.keys.preferences(userKey)},
		label, value, maxPerUser).Text()
	if err != nil {
		return s.fail(ctx, "storing a preference", err)
	}
	switch res {
	case "OK":
		return nil
	case "NOACCOUNT":
		return engine.ErrAccountNotFound
	case "TOOMANY":
		return engine.ErrTooManyPreferences
	}
	return fmt.Errorf("redisstore: storing a preference: unexpected reply %q", res)
}

// GetPreference returns the value stored under label and true, or "" and false.
func (s *Store) GetPreference(ctx context.Context, userKey, label string) (string, bool, error) {
	if err := s.enter(); err != nil {
		return "", false, err
	}
	defer s.leave()
	value, err := s.rdb.HGet(ctx, s.keys.preferences(userKey), label).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.fail(ctx, "reading a preference", err)
	}
	return value, true, nil
}
