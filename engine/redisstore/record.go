package redisstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// sessionFields are the fields of a session record that a change writes: the whole session
// as JSON (so fields added to engine.Session later are kept), and beside it what the scripts
// need to compute expiry: last-use times, clocks and permanence. The record's las/lan and
// lvs/lvn fields, not the JSON, hold the last-use times: Touch updates only them.
type sessionFields struct {
	json                string
	las, lan, lvs, lvn  string
	idle, inact         string
	lifeSecs, lifeNanos string // "" "" when there is no lifetime end
	permanent           string // "1" or "0"
}

func encodeSession(s *engine.Session) (sessionFields, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return sessionFields{}, fmt.Errorf("redisstore: encoding session: %w", err)
	}
	f := sessionFields{json: string(b)}
	f.las, f.lan = timeParts(s.LastAccessedAt)
	f.lvs, f.lvn = timeParts(s.LastActiveAt)
	f.idle = strconv.FormatInt(s.Settings.IdleConnectionTimeoutSeconds, 10)
	f.inact = strconv.FormatInt(s.InactivitySeconds, 10)
	if !s.LifetimeEnd.IsZero() {
		f.lifeSecs, f.lifeNanos = timeParts(s.LifetimeEnd)
	}
	f.permanent = "0"
	if s.Permanent {
		f.permanent = "1"
	}
	return f, nil
}

// timeParts splits t into Unix seconds and nanoseconds, the form the scripts compare.
func timeParts(t time.Time) (string, string) {
	return strconv.FormatInt(t.Unix(), 10), strconv.Itoa(t.Nanosecond())
}

func timeFromParts(secs, nanos string) (time.Time, error) {
	s, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	n, err := strconv.ParseInt(nanos, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(s, n).UTC(), nil
}

// normalTime is t as the store gives it back: UTC, without a monotonic clock reading.
func normalTime(t time.Time) time.Time { return t.Round(0).UTC() }

// storedSession is a session record read from Redis.
type storedSession struct {
	session *engine.Session
	json    string // the JSON as stored, for compare-and-set
}

// decodeSession turns the field/value list of HGETALL on a session record into a session.
func decodeSession(list []any) (storedSession, error) {
	fields := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		v, _ := list[i+1].(string)
		fields[k] = v
	}
	raw, ok := fields["j"]
	if !ok {
		return storedSession{}, fmt.Errorf("redisstore: a session record has no JSON")
	}
	s := new(engine.Session)
	if err := json.Unmarshal([]byte(raw), s); err != nil {
		return storedSession{}, fmt.Errorf("redisstore: decoding session: %w", err)
	}
	var err error
	if s.LastAccessedAt, err = timeFromParts(fields["las"], fields["lan"]); err != nil {
		return storedSession{}, fmt.Errorf("redisstore: session %s: last access: %w", s.ID, err)
	}
	if s.LastActiveAt, err = timeFromParts(fields["lvs"], fields["lvn"]); err != nil {
		return storedSession{}, fmt.Errorf("redisstore: session %s: last activity: %w", s.ID, err)
	}
	normalizeTimes(s)
	return storedSession{session: s, json: raw}, nil
}

// normalizeTimes gives every time of s the form the store returns.
func normalizeTimes(s *engine.Session) {
	for _, t := range []*time.Time{&s.LifetimeEnd, &s.CreatedAt, &s.LastAccessedAt, &s.LastActiveAt} {
		if t.IsZero() {
			*t = time.Time{}
		} else {
			*t = normalTime(*t)
		}
	}
}

func encodeAccount(a *engine.Account) (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("redisstore: encoding account: %w", err)
	}
	return string(b), nil
}

func decodeAccount(raw string) (*engine.Account, error) {
	a := new(engine.Account)
	if err := json.Unmarshal([]byte(raw), a); err != nil {
		return nil, fmt.Errorf("redisstore: decoding account: %w", err)
	}
	for _, t := range []*time.Time{&a.LockedUntil, &a.CreatedAt, &a.LastLoginAt, &a.PasswordChangedAt} {
		if !t.IsZero() {
			*t = normalTime(*t)
		}
	}
	return a, nil
}
