package rpc

import (
	"strconv"
	"time"
)

// appendJSON appends s as JSON with the members and values encoding/json gives it, without
// its reflection: a describeSessions reply spent a quarter of its time in encoding/json
// (TestSessionAppendJSON holds the two equal for every field).
func (s *Session) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if s.AuthToken != "" {
		b = appendMember(b, "authToken", s.AuthToken)
		b = append(b, ',')
	}
	b = appendMember(b, "sessionId", s.SessionId)
	b = appendMember(append(b, ','), "username", s.Username)
	b = appendMember(append(b, ','), "description", s.Description)
	b = appendMember(append(b, ','), "defaultApi", s.DefaultApi)
	b = appendMember(append(b, ','), "defaultDebug", s.DefaultDebug)
	b = appendMember(append(b, ','), "defaultDatabaseName", s.DefaultDatabaseName)
	b = appendMember(append(b, ','), "defaultOwnerName", s.DefaultOwnerName)
	b = appendMember(append(b, ','), "defaultBinaryFormat", s.DefaultBinaryFormat)
	b = append(b, `,"defaultResponseOptions":{`...)
	sep := false
	for _, m := range [...]struct{ name, value string }{
		{"binaryFormat", s.DefaultResponseOptions.BinaryFormat},
		{"dataFormat", s.DefaultResponseOptions.DataFormat},
		{"numberFormat", s.DefaultResponseOptions.NumberFormat},
	} {
		if m.value == "" { // omitempty
			continue
		}
		if sep {
			b = append(b, ',')
		}
		b, sep = appendMember(b, m.name, m.value), true
	}
	b = append(b, `},"idleConnectionTimeoutSeconds":`...)
	b = strconv.AppendInt(b, s.IdleConnectionTimeoutSeconds, 10)
	b = append(b, `,"idleCursorTimeoutSeconds":`...)
	b = strconv.AppendInt(b, s.IdleCursorTimeoutSeconds, 10)
	b = append(b, `,"permanentSession":`...)
	b = strconv.AppendBool(b, s.PermanentSession)
	b = appendMember(append(b, ','), "origin", s.Origin)
	b = append(b, `,"sessionStartTimestamp":`...)
	b = appendTimestamp(b, time.Time(s.SessionStartTimestamp))
	b = append(b, `,"sessionLastAccessedTimestamp":`...)
	b = appendTimestamp(b, time.Time(s.SessionLastAccessedTimestamp))
	b = append(b, `,"expiresAt":`...)
	if s.ExpiresAt == nil {
		b = append(b, "null"...)
	} else {
		b = appendTimestamp(b, time.Time(*s.ExpiresAt))
	}
	b = appendMember(append(b, ','), "clientAddress", s.ClientAddress)
	b = appendMember(append(b, ','), "hostname", s.Hostname)
	b = appendMember(append(b, ','), "hostUuid", s.HostUuid)
	b = append(b, `,"hostIpAddresses":`...)
	if s.HostIpAddresses == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, ip := range s.HostIpAddresses {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, ip)
		}
		b = append(b, ']')
	}
	b = appendMember(append(b, ','), "defaultRetentionPolicy", s.DefaultRetentionPolicy)
	b = appendMember(append(b, ','), "defaultRetentionUnit", s.DefaultRetentionUnit)
	b = append(b, `,"defaultRetentionPeriod":`...)
	b = strconv.AppendInt(b, int64(s.DefaultRetentionPeriod), 10)
	return append(b, '}')
}

// appendJSON appends r as encoding/json would, its sessions with Session.appendJSON.
func (r *SessionsResult) appendJSON(b []byte) []byte {
	if r.Sessions == nil {
		return append(b, `{"sessions":null}`...)
	}
	b = append(b, `{"sessions":[`...)
	for i := range r.Sessions {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.Sessions[i].appendJSON(b)
	}
	return append(b, "]}"...)
}

// appendMember appends "name":value; name needs no escaping.
func appendMember(b []byte, name, value string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendTimestamp appends t as Timestamp.MarshalJSON writes it.
func appendTimestamp(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, timestampLayout)
	return append(b, '"')
}
