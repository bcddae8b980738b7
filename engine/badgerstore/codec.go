package badgerstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
)

// Keys. Every key starts with a one-letter namespace and a slash.
const (
	prefixAccount    = "a/" // a/<userKey> → account
	prefixSession    = "s/" // s/<sessionId> → session
	prefixTouch      = "t/" // t/<sessionId> → last-use times (format 1 only; read, then removed)
	prefixLastUse    = "u/" // u/<generation><sequence> → last-use times (format 2 only; read, then removed)
	prefixPreference = "p/" // p/<uvarint len(userKey)><userKey><label> → value
	keyFormat        = "m/format"
)

// formatVersion names the layout above, the encodings below and the last-use files. Open
// also reads formatVersion1 (last-use times under t/ keys) and formatVersion2 (under u/
// keys) and upgrades them; it refuses any other.
const (
	formatVersion  = "sessiond-badgerstore-3"
	formatVersion2 = "sessiond-badgerstore-2"
	formatVersion1 = "sessiond-badgerstore-1"
)

// recordVersion is the first byte of every value.
const recordVersion = 1

func accountKey(userKey string) []byte { return append([]byte(prefixAccount), userKey...) }
func sessionKey(id string) []byte      { return append([]byte(prefixSession), id...) }
func touchKey(id string) []byte        { return append([]byte(prefixTouch), id...) }

func preferenceKey(userKey, label string) []byte {
	k := make([]byte, 0, len(prefixPreference)+binary.MaxVarintLen64+len(userKey)+len(label))
	k = append(k, prefixPreference...)
	k = binary.AppendUvarint(k, uint64(len(userKey)))
	k = append(k, userKey...)
	return append(k, label...)
}

// parsePreferenceKey splits a preference key into user key and label.
func parsePreferenceKey(key []byte) (userKey, label string, err error) {
	rest := key[len(prefixPreference):]
	n, size := binary.Uvarint(rest)
	if size <= 0 || n > uint64(len(rest)-size) {
		return "", "", fmt.Errorf("malformed preference key %q", key)
	}
	rest = rest[size:]
	return string(rest[:n]), string(rest[n:]), nil
}

// encoder appends values in the compact binary encoding: unsigned and signed varints,
// length-prefixed strings, and times as a tag (0 zero, 1 set) then Unix seconds and
// nanoseconds.
type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) varint(v int64)   { e.buf = binary.AppendVarint(e.buf, v) }

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.buf = append(e.buf, 0)
		return
	}
	e.buf = append(e.buf, 1)
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

var errCorrupt = errors.New("truncated or malformed record")

// decoder reads what encoder wrote. The first error sticks; later reads return zero values.
type decoder struct {
	buf []byte
	err error
	// intern, when not nil, shares repeated strings (settings, usernames, addresses) among
	// the records decoded at open. recent holds strings of it by length and first byte:
	// records of one account repeat the same values field by field, and comparing with the
	// one held there is cheaper than a lookup in intern.
	intern map[string]string
	recent [64]string
}

// maxInterned bounds the intern table, so unique strings cannot make it grow without end.
const maxInterned = 1 << 16

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if len(d.buf) < 1 {
		d.fail()
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) raw(n uint64) []byte {
	if n > uint64(len(d.buf)) {
		d.fail()
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) str() string {
	b := d.raw(d.uvarint())
	if len(b) == 0 {
		return ""
	}
	if d.intern == nil {
		return string(b)
	}
	slot := &d.recent[(len(b)*7+int(b[0]))%len(d.recent)]
	if *slot == string(b) {
		return *slot
	}
	s, ok := d.intern[string(b)]
	if !ok {
		s = string(b)
		if len(d.intern) >= maxInterned {
			return s
		}
		d.intern[s] = s
	}
	*slot = s
	return s
}

// uniqueStr reads a string that is not worth interning.
func (d *decoder) uniqueStr() string { return string(d.raw(d.uvarint())) }

func (d *decoder) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		sec := d.varint()
		nsec := d.uvarint()
		if nsec >= 1e9 {
			d.fail()
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).UTC()
	}
	d.fail()
	return time.Time{}
}

// version checks the leading version byte.
func (d *decoder) version() {
	if v := d.byte(); d.err == nil && v != recordVersion {
		d.err = fmt.Errorf("unsupported record version %d", v)
	}
}

// done returns the first error, or one if bytes are left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.buf) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

func encodeAccount(a *engine.Account) []byte {
	e := encoder{buf: make([]byte, 0, 64+len(a.Username)+len(a.Description)+len(a.PasswordHash))}
	e.buf = append(e.buf, recordVersion)
	e.str(a.Username)
	e.str(a.Description)
	e.uvarint(uint64(len(a.Roles)))
	for _, r := range a.Roles {
		e.str(r)
	}
	e.str(a.PasswordHash)
	e.varint(int64(a.LockoutAfter))
	e.varint(int64(a.LockoutWaitMinutes))
	e.varint(int64(a.FailedAttempts))
	e.time(a.LockedUntil)
	e.time(a.CreatedAt)
	e.time(a.LastLoginAt)
	e.time(a.PasswordChangedAt)
	return e.buf
}

func decodeAccount(b []byte) (*engine.Account, error) {
	d := decoder{buf: b}
	d.version()
	a := &engine.Account{
		Username:    d.str(),
		Description: d.str(),
	}
	if n := d.uvarint(); n > 0 {
		if n > uint64(len(d.buf)) { // every role takes at least a byte
			d.fail()
		} else {
			a.Roles = make([]string, n)
			for i := range a.Roles {
				a.Roles[i] = d.str()
			}
		}
	}
	a.PasswordHash = d.str()
	a.LockoutAfter = d.int()
	a.LockoutWaitMinutes = d.int()
	a.FailedAttempts = d.int()
	a.LockedUntil = d.time()
	a.CreatedAt = d.time()
	a.LastLoginAt = d.time()
	a.PasswordChangedAt = d.time()
	if err := d.done(); err != nil {
		return nil, err
	}
	return a, nil
}

const flagPermanent = 1 << 0

// encodeSession encodes everything but the id, which is in the key.
func encodeSession(s *engine.Session) []byte {
	e := encoder{buf: make([]byte, 0, 192)}
	e.buf = append(e.buf, recordVersion)
	var flags uint64
	if s.Permanent {
		flags |= flagPermanent
	}
	e.uvarint(flags)
	e.buf = append(e.buf, s.TokenHash[:]...)
	e.str(s.Username)
	e.str(string(s.Origin))
	e.str(s.ClientAddress)
	st := &s.Settings
	e.str(st.Description)
	e.str(st.DefaultAPI)
	e.str(st.DefaultDebug)
	e.str(st.DefaultDatabaseName)
	e.str(st.DefaultOwnerName)
	e.str(st.DefaultBinaryFormat)
	e.str(st.DefaultVariantFormat)
	e.str(st.DefaultResponseOptions.BinaryFormat)
	e.str(st.DefaultResponseOptions.DataFormat)
	e.str(st.DefaultResponseOptions.NumberFormat)
	e.str(st.DefaultRetentionPolicy)
	e.str(st.DefaultRetentionUnit)
	e.varint(int64(st.DefaultRetentionPeriod))
	e.varint(st.IdleConnectionTimeoutSeconds)
	e.varint(st.IdleCursorTimeoutSeconds)
	e.varint(s.InactivitySeconds)
	e.time(s.LifetimeEnd)
	e.time(s.CreatedAt)
	e.time(s.LastAccessedAt)
	e.time(s.LastActiveAt)
	return e.buf
}

// decodeSession decodes b into s, whose ID the caller sets from the key.
func decodeSession(d *decoder, s *engine.Session) error {
	d.version()
	flags := d.uvarint()
	*s = engine.Session{Permanent: flags&flagPermanent != 0}
	copy(s.TokenHash[:], d.raw(uint64(len(s.TokenHash))))
	s.Username = d.str()
	s.Origin = engine.Origin(d.str())
	s.ClientAddress = d.str()
	st := &s.Settings
	st.Description = d.str()
	st.DefaultAPI = d.str()
	st.DefaultDebug = d.str()
	st.DefaultDatabaseName = d.str()
	st.DefaultOwnerName = d.str()
	st.DefaultBinaryFormat = d.str()
	st.DefaultVariantFormat = d.str()
	st.DefaultResponseOptions.BinaryFormat = d.str()
	st.DefaultResponseOptions.DataFormat = d.str()
	st.DefaultResponseOptions.NumberFormat = d.str()
	st.DefaultRetentionPolicy = d.str()
	st.DefaultRetentionUnit = d.str()
	st.DefaultRetentionPeriod = d.int()
	st.IdleConnectionTimeoutSeconds = d.varint()
	st.IdleCursorTimeoutSeconds = d.varint()
	s.InactivitySeconds = d.varint()
	s.LifetimeEnd = d.time()
	s.CreatedAt = d.time()
	s.LastAccessedAt = d.time()
	s.LastActiveAt = d.time()
	return d.done()
}

func encodeTouch(lastAccessedAt, lastActiveAt time.Time) []byte {
	e := encoder{buf: make([]byte, 0, 24)}
	e.buf = append(e.buf, recordVersion)
	e.time(lastAccessedAt)
	e.time(lastActiveAt)
	return e.buf
}

func decodeTouch(b []byte) (lastAccessedAt, lastActiveAt time.Time, err error) {
	d := decoder{buf: b}
	d.version()
	lastAccessedAt = d.time()
	lastActiveAt = d.time()
	return lastAccessedAt, lastActiveAt, d.done()
}

func encodePreference(value string) []byte {
	e := encoder{buf: make([]byte, 0, 1+binary.MaxVarintLen64+len(value))}
	e.buf = append(e.buf, recordVersion)
	e.str(value)
	return e.buf
}

func decodePreference(b []byte) (string, error) {
	d := decoder{buf: b}
	d.version()
	v := d.uniqueStr()
	return v, d.done()
}

// Entry flags of a last-use chunk.
const (
	lastUseAccessed   = 1 << 0 // LastAccessedAt is set and follows
	lastUseActive     = 1 << 1 // LastActiveAt is set, differs from LastAccessedAt, and follows
	lastUseActiveSame = 1 << 2 // LastActiveAt equals LastAccessedAt
)

// maxChunkEntries bounds the sessions in one last-use chunk (a record of about 100 KB in a last-use file).
const maxChunkEntries = 2048

// appendLastUses appends a chunk of last-use times to dst: the version byte, the count, then per
// session its id, a flags byte, LastAccessedAt as Unix nanoseconds less the previous
// entry's, and LastActiveAt as nanoseconds before LastAccessedAt. Times written together lie
// close together, so most take a few bytes.
func appendLastUses(dst []byte, touched []memstore.Touched) []byte {
	e := encoder{buf: dst}
	e.buf = append(e.buf, recordVersion)
	e.uvarint(uint64(len(touched)))
	var previous int64
	for i := range touched {
		t := &touched[i]
		e.str(t.ID)
		var flags byte
		var accessed, active int64
		if !t.LastAccessedAt.IsZero() {
			flags |= lastUseAccessed
			accessed = t.LastAccessedAt.UnixNano()
		}
		switch {
		case t.LastActiveAt.IsZero():
		case flags != 0 && t.LastActiveAt.Equal(t.LastAccessedAt):
			flags |= lastUseActiveSame
		default:
			flags |= lastUseActive
			active = t.LastActiveAt.UnixNano()
		}
		e.buf = append(e.buf, flags)
		if flags&lastUseAccessed != 0 {
			e.varint(accessed - previous)
			previous = accessed
		}
		if flags&lastUseActive != 0 {
			e.varint(accessed - active)
		}
	}
	return e.buf
}

// decodeLastUses appends the entries of a chunk to dst.
func decodeLastUses(b []byte, dst []memstore.Touched) ([]memstore.Touched, error) {
	// The ids are cut from one copy of the chunk: an allocation a chunk, not one an entry.
	whole := string(b)
	d := decoder{buf: b}
	d.version()
	n := d.uvarint()
	if n > uint64(len(d.buf)) { // every entry takes at least two bytes
		d.fail()
	}
	var previous int64
	for i := uint64(0); i < n && d.err == nil; i++ {
		size := d.uvarint()
		at := len(b) - len(d.buf)
		d.raw(size)
		if d.err != nil {
			break
		}
		t := memstore.Touched{ID: whole[at : at+int(size)]}
		flags := d.byte()
		if flags&^(lastUseAccessed|lastUseActive|lastUseActiveSame) != 0 ||
			flags&lastUseActiveSame != 0 && flags&(lastUseAccessed|lastUseActive) != lastUseAccessed {
			d.fail()
			break
		}
		var accessed int64
		if flags&lastUseAccessed != 0 {
			accessed = previous + d.varint()
			previous = accessed
			t.LastAccessedAt = time.Unix(0, accessed).UTC()
		}
		switch {
		case flags&lastUseActiveSame != 0:
			t.LastActiveAt = t.LastAccessedAt
		case flags&lastUseActive != 0:
			t.LastActiveAt = time.Unix(0, accessed-d.varint()).UTC()
		}
		dst = append(dst, t)
	}
	return dst, d.done()
}
