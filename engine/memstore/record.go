package memstore

import (
	"math"
	"time"
	"unique"

	"github.com/sessiond/sessiond/engine"
)

// Session times are kept as Unix nanoseconds. The zero time.Time gets its own value, and
// times outside the range int64 nanoseconds can express (years 1678 to 2262) are clamped.
const (
	zeroTime int64 = math.MinInt64
	minTime  int64 = math.MinInt64 + 1
	// never is the expiry of a session that cannot expire.
	never int64 = math.MaxInt64
)

var (
	earliestTime = time.Unix(0, minTime)
	latestTime   = time.Unix(0, math.MaxInt64)
)

// packTime converts t to the stored form.
func packTime(t time.Time) int64 {
	switch {
	case t.IsZero():
		return zeroTime
	case t.Before(earliestTime):
		return minTime
	case t.After(latestTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// unpackTime converts a stored time back, in UTC.
func unpackTime(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// normalTime is t as the store will give it back.
func normalTime(t time.Time) time.Time { return unpackTime(packTime(t)) }

// normalAccount returns a copy of a with its times as the store gives them back (UTC, no
// monotonic reading), so a Store and its Journal see the same values.
func normalAccount(a *engine.Account) *engine.Account {
	c := a.Clone()
	c.LockedUntil = stripTime(c.LockedUntil)
	c.CreatedAt = stripTime(c.CreatedAt)
	c.LastLoginAt = stripTime(c.LastLoginAt)
	c.PasswordChangedAt = stripTime(c.PasswordChangedAt)
	return c
}

// stripTime drops the location and the monotonic reading of t; accounts keep full precision
// and range.
func stripTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

// normalSession returns a copy of s with its times as the store gives them back.
func normalSession(s *engine.Session) *engine.Session {
	c := s.Clone()
	c.LifetimeEnd = normalTime(c.LifetimeEnd)
	c.CreatedAt = normalTime(c.CreatedAt)
	c.LastAccessedAt = normalTime(c.LastAccessedAt)
	c.LastActiveAt = normalTime(c.LastActiveAt)
	return c
}

// profile is what sessions typically share: one account's sessions created with the same
// settings have the same profile, interned once for all of them.
type profile struct {
	Username          string
	Origin            engine.Origin
	Permanent         bool
	InactivitySeconds int64
	Settings          engine.SessionSettings
}

// slot numbers a record in the store's slabs; 0 is no record.
type slot = uint32

// record is the compact in-memory form of an engine.Session (120 bytes). Records live in
// slabs and refer to each other and to their groups by number, not by pointer: the garbage
// collector then has two pointers per session to follow instead of about ten.
type record struct {
	id        string
	profile   unique.Handle[profile]
	tokenHash engine.TokenHash

	createdAt, lastAccessedAt, lastActiveAt, lifetimeEnd int64
	// expiresAt is the packed ExpiresAt, or never; while behind is set, only a lower bound
	// of it (a touch moved the expiry later and did not recompute it: see touchExpiry).
	expiresAt int64
	// user and addr are the record's groups in Store.users and Store.addrs (addr 0: no
	// address); userPos and addrPos its positions in their members.
	user, addr       uint32
	userPos, addrPos int32
	// heapIndex is the record's position in the expiry heap, or -1.
	heapIndex int32
	// touched is set while the record waits in Store.touched.
	touched bool
	// behind says expiresAt may be earlier than the session's expiry.
	behind bool
}

// profileCache remembers the profile interned last: sessions created or loaded one after
// another mostly share theirs, and comparing two profiles whose strings are shared is much
// cheaper than unique.Make's hashing (a tenth of loading a million sessions). It is used
// under the store's write lock.
type profileCache struct {
	value  profile
	handle unique.Handle[profile]
	set    bool
}

func (c *profileCache) intern(p profile) unique.Handle[profile] {
	if !c.set || c.value != p {
		c.value, c.handle, c.set = p, unique.Make(p), true
	}
	return c.handle
}

// setFields copies everything but the groups from s.
func (r *record) setFields(s *engine.Session, profiles *profileCache) {
	r.id = s.ID
	r.tokenHash = s.TokenHash
	r.profile = profiles.intern(profile{
		Username:          s.Username,
		Origin:            s.Origin,
		Permanent:         s.Permanent,
		InactivitySeconds: s.InactivitySeconds,
		Settings:          s.Settings,
	})
	r.createdAt = packTime(s.CreatedAt)
	r.lastAccessedAt = packTime(s.LastAccessedAt)
	r.lastActiveAt = packTime(s.LastActiveAt)
	r.lifetimeEnd = packTime(s.LifetimeEnd)
	r.expiresAt, r.behind = expiryOf(s), false
}

// fill writes the session r stands for, from clientAddress, into s.
func (r *record) fill(s *engine.Session, clientAddress string) {
	p := r.profile.Value()
	*s = engine.Session{
		ID:                r.id,
		TokenHash:         r.tokenHash,
		Username:          p.Username,
		Permanent:         p.Permanent,
		Origin:            p.Origin,
		Settings:          p.Settings,
		InactivitySeconds: p.InactivitySeconds,
		LifetimeEnd:       unpackTime(r.lifetimeEnd),
		CreatedAt:         unpackTime(r.createdAt),
		LastAccessedAt:    unpackTime(r.lastAccessedAt),
		LastActiveAt:      unpackTime(r.lastActiveAt),
		ClientAddress:     clientAddress,
	}
}

// refreshExpiry recomputes expiresAt after the clocks changed. The engine's ExpiresAt stays
// the only definition of when a session ends.
func (r *record) refreshExpiry() {
	r.expiresAt, r.behind = r.exactExpiry(), false
}

// exactExpiry is the packed ExpiresAt of r, or never.
func (r *record) exactExpiry() int64 {
	var s engine.Session
	r.fill(&s, "")
	return expiryOf(&s)
}

// touchExpiry follows a touch at atN, which can only move the expiry later. Recomputing it
// costs as much as the rest of a token check, so expiresAt stays where it was, a lower bound,
// until atN reaches it: then a session touched all the time recomputes it once an idle
// timeout, not once a touch.
func (r *record) touchExpiry(atN int64) {
	if atN < r.expiresAt {
		r.behind = true
		return
	}
	r.refreshExpiry()
}

// expiry is the packed ExpiresAt of r, or never, with expiresAt brought up to date. The write
// lock is held.
func (r *record) expiry() int64 {
	if r.behind {
		r.refreshExpiry()
	}
	return r.expiresAt
}

// expiryOf is the packed end of s, or never.
func expiryOf(s *engine.Session) int64 {
	end, ok := s.ExpiresAt()
	if !ok {
		return never
	}
	return packTime(end)
}

// live reports whether r has not expired at the packed time now. It writes nothing: the read
// lock is enough.
func (r *record) live(now int64) bool {
	return now < r.expiresAt || r.behind && now < r.exactExpiry()
}

// chunkSize is the number of records in one slab.
const chunkSize = 1024

// slabs hold the records. Slabs never move, so a *record stays valid while its slot is in
// use; freed slots are reused.
type slabs struct {
	chunks []*[chunkSize]record
	used   slot // slots handed out so far, including slot 0, which is never used
	free   []slot
}

func (sl *slabs) at(n slot) *record { return &sl.chunks[n/chunkSize][n%chunkSize] }

// alloc returns a free slot, holding a zero record.
func (sl *slabs) alloc() slot {
	if k := len(sl.free); k > 0 {
		n := sl.free[k-1]
		sl.free = sl.free[:k-1]
		return n
	}
	if sl.used == 0 {
		sl.used = 1
	}
	if int(sl.used) >= len(sl.chunks)*chunkSize {
		c := new([chunkSize]record)
		prefault(c[:])
		sl.chunks = append(sl.chunks, c)
	}
	n := sl.used
	sl.used++
	return n
}

// release zeroes the record in n and frees the slot.
func (sl *slabs) release(n slot) {
	*sl.at(n) = record{}
	sl.free = append(sl.free, n)
}

// groupSet groups sessions by a key: their account or their client address. Group number
// 0 means none. Each group's key is shared by all its sessions instead of each keeping a
// copy, and each record knows its position in members, so joining and leaving are O(1).
type groupSet struct {
	numbers map[string]uint32
	groups  []group
	free    []uint32
}

type group struct {
	key     string
	members []slot
}

func newGroupSet() groupSet {
	return groupSet{numbers: make(map[string]uint32), groups: make([]group, 1)}
}

// members returns the sessions in the group for key.
func (gs *groupSet) members(key string) []slot {
	if n, ok := gs.numbers[key]; ok {
		return gs.groups[n].members
	}
	return nil
}

// key returns the key of group n ("" for 0).
func (gs *groupSet) key(n uint32) string { return gs.groups[n].key }

// join adds the session in slot n to the group for key, creating the group if needed, and
// returns the group's number and the session's position in it.
func (gs *groupSet) join(key string, n slot) (uint32, int32) {
	g, ok := gs.numbers[key]
	if !ok {
		if k := len(gs.free); k > 0 {
			g = gs.free[k-1]
			gs.free = gs.free[:k-1]
		} else {
			g = uint32(len(gs.groups))
			gs.groups = append(gs.groups, group{})
		}
		gs.groups[g].key = key
		gs.numbers[key] = g
	}
	members := append(gs.groups[g].members, n)
	gs.groups[g].members = members
	return g, int32(len(members) - 1)
}

// leave removes the member at pos from group g by moving the last member into its place,
// and returns that member's slot (0 if none moved): its position is now pos. An empty group
// is freed.
func (gs *groupSet) leave(g uint32, pos int32) slot {
	grp := &gs.groups[g]
	last := len(grp.members) - 1
	moved := grp.members[last]
	grp.members[pos] = moved
	grp.members = grp.members[:last]
	switch {
	case last == 0:
		delete(gs.numbers, grp.key)
		*grp = group{}
		gs.free = append(gs.free, g)
		return 0
	case cap(grp.members) > 64 && len(grp.members) < cap(grp.members)/4:
		grp.members = append([]slot(nil), grp.members...) // give most of the memory back
	}
	if int(pos) == last {
		return 0
	}
	return moved
}

// dueEntry is one expiry-heap slot. at is never later than the session's expiresAt: Touch
// moves expiries later without updating the heap, and the heap catches up when the entry
// surfaces.
type dueEntry struct {
	at int64
	n  slot
}

// index finds sessions by a key (id or token hash) through a 64-bit digest of it, in an
// open-addressing table with linear probing. An entry is 8 bytes: the session's slot and the
// digest's low 32 bits, which both place the entry and are compared before the session's
// key is. So a lookup in a large store misses the cache once in the table and once in the
// record it finds (a Go map costs two or three misses more, in its directory, table and
// group), and the table holds no pointers for the garbage collector to follow. Digests are
// random-looking, which linear probing needs; the table is kept at most three quarters full.
type index[K comparable] struct {
	digest  func(K) uint64
	keyOf   func(*record) K
	entries []indexEntry // empty, or a power of two long
	count   int
}

// indexEntry is one place in an index's table; slot 0 marks it empty.
type indexEntry struct {
	n   slot
	tag uint32 // the digest's low 32 bits
}

func newIndex[K comparable](digest func(K) uint64, keyOf func(*record) K) index[K] {
	return index[K]{digest: digest, keyOf: keyOf}
}

// get returns the slot of the session with key k, or 0.
func (x *index[K]) get(sl *slabs, k K) slot {
	if x.count == 0 {
		return 0
	}
	tag := uint32(x.digest(k))
	mask := len(x.entries) - 1
	for i := int(tag) & mask; ; i = (i + 1) & mask {
		e := x.entries[i]
		if e.n == 0 {
			return 0
		}
		if e.tag == tag && x.keyOf(sl.at(e.n)) == k {
			return e.n
		}
	}
}

// put adds the session in slot n and reports true, or reports false, adding nothing, if
// its key is already in the index.
func (x *index[K]) put(sl *slabs, n slot) bool {
	k := x.keyOf(sl.at(n))
	tag := uint32(x.digest(k))
	if (x.count+1)*4 > len(x.entries)*3 {
		x.resize(max(2*len(x.entries), minIndexSize))
	}
	mask := len(x.entries) - 1
	i := int(tag) & mask
	for ; x.entries[i].n != 0; i = (i + 1) & mask {
		if e := x.entries[i]; e.tag == tag && x.keyOf(sl.at(e.n)) == k {
			return false
		}
	}
	x.entries[i] = indexEntry{n: n, tag: tag}
	x.count++
	return true
}

// del removes the session in slot n, if the index holds it. The entries after it that
// would no longer be reachable from their home place move back into the gap.
func (x *index[K]) del(sl *slabs, n slot) {
	if x.count == 0 {
		return
	}
	mask := len(x.entries) - 1
	i := int(uint32(x.digest(x.keyOf(sl.at(n))))) & mask
	for x.entries[i].n != n {
		if x.entries[i].n == 0 {
			return
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; x.entries[j].n != 0; j = (j + 1) & mask {
		// The entry at j stays unless its home is outside the cyclic range (i, j].
		if home := int(x.entries[j].tag) & mask; (j-home)&mask >= (j-i)&mask {
			x.entries[i] = x.entries[j]
			i = j
		}
	}
	x.entries[i] = indexEntry{}
	x.count--
}

// place reads the entry in the home place of key k and returns its tag, so that a put of k
// that follows finds it in the cache.
func (x *index[K]) place(k K) uint32 {
	if len(x.entries) == 0 {
		return 0
	}
	return x.entries[int(uint32(x.digest(k)))&(len(x.entries)-1)].tag
}

// minIndexSize is the table size of an index's first entry.
const minIndexSize = 8

// reserve makes room for n entries without resizing.
func (x *index[K]) reserve(n int) {
	size := minIndexSize
	for size*3 < n*4 {
		size *= 2
	}
	if size > len(x.entries) {
		x.resize(size)
	}
}

// resize moves the entries into a table of size places, a power of two.
func (x *index[K]) resize(size int) {
	old := x.entries
	x.entries = make([]indexEntry, size)
	prefault(x.entries)
	mask := size - 1
	for _, e := range old {
		if e.n == 0 {
			continue
		}
		i := int(e.tag) & mask
		for x.entries[i].n != 0 {
			i = (i + 1) & mask
		}
		x.entries[i] = e
	}
}

func (x *index[K]) len() int { return x.count }

// all returns every slot in the index.
func (x *index[K]) all() []slot {
	out := make([]slot, 0, x.count)
	for _, e := range x.entries {
		if e.n != 0 {
			out = append(out, e.n)
		}
	}
	return out
}
