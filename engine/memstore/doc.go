// Package memstore is an in-memory engine.Store: the store behind --in-memory and tests, and
// the in-memory core of the Badger store (engine/badgerstore).
//
// # Locking
//
// One sync.RWMutex guards everything. Lookups (SessionByTokenHash, SessionByID, GetAccount,
// the lists) take the read lock, copy the record out and build the result after releasing
// it. Every change, Touch included, takes the write lock, so checks and writes that must be
// atomic (the session caps, the last-admin rule, the preference limit) happen under one
// lock. The callbacks of UpdateAccount and UpdateSession run under the write lock and must
// not call the store.
//
// # Memory
//
// A session costs about 275 bytes at a million sessions, its id included. Records are
// 120-byte entries in slabs that refer to each other by number rather than by pointer, which
// keeps the garbage collector's work small. What sessions usually share (username, origin,
// permanence, inactivity timeout, settings) is interned once with the unique package; the
// account and address groups hold their key once for all their members. The id and token
// indexes are open-addressing tables of 8-byte entries keyed by 64-bit digests.
//
// Session times are kept as Unix nanoseconds, so they come back in UTC, without a monotonic
// reading and clamped to the years 1678 to 2262; account times are kept as given, in UTC.
//
// # Expiry
//
// A min-heap ordered by expiry finds expired sessions without scanning all of them. Touch
// only ever moves an expiry later and leaves the heap alone; the heap catches up when it
// meets a stale entry. PurgeExpired, and InsertSession when a count has reached its cap,
// cost time in proportion to the sessions that have expired, not to all sessions.
//
// # Persistence
//
// A persistent store builds on a Store with a Journal (Options.Journal): each change is
// handed to the journal as a Batch, under the lock and before memory changes, and is applied
// only if the journal accepts it. Touch is not journaled; the persistent store collects
// touched sessions with DrainTouched and writes them lazily, and can list every session's
// times in pieces with LastUses. At open it loads its records with RestoreAccount,
// RestoreSessions and RestorePreference, then times kept apart with RestoreTouched.
package memstore
