package rpc

import (
	"encoding/json"
	"time"
)

// Timestamp is a UTC time in RFC 3339 with whole seconds, e.g. "2024-10-09T05:01:23Z".
type Timestamp time.Time

const timestampLayout = "2006-01-02T15:04:05Z"

// MarshalJSON writes the timestamp as an RFC 3339 string in UTC.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	return appendTimestamp(make([]byte, 0, len(timestampLayout)+2), time.Time(t)), nil
}

// UnmarshalJSON reads an RFC 3339 string.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return err
	}
	*t = Timestamp(parsed.UTC())
	return nil
}

// timestampOrNil returns nil for the zero time.
func timestampOrNil(t time.Time) *Timestamp {
	if t.IsZero() {
		return nil
	}
	ts := Timestamp(t)
	return &ts
}

// FlexBool is a boolean that also accepts the strings "true" and "false", as FairCom's own
// examples send "permanentSession": "true".
type FlexBool bool

// UnmarshalJSON accepts true, false, "true" and "false", and null, which leaves b as it is
// (left out), as for every other optional member.
func (b *FlexBool) UnmarshalJSON(data []byte) error {
	switch string(data) {
	case "true", `"true"`:
		*b = true
	case "false", `"false"`:
		*b = false
	case "null":
	default:
		return &paramError{field: "permanentSession", reason: `must be true or false`}
	}
	return nil
}

// Empty is the result of methods that return nothing but success: {}.
type Empty struct{}
