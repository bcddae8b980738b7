// Package badgerstore is sessiond's product engine.Store: Badger v4 on disk, with everything
// also held in memory.
//
// Open loads every record into an in-memory core (memstore) and all reads are served from
// there; Badger is only written to. Each change goes to Badger in one transaction while the
// core holds its lock (so disk and memory see changes in the same order), is applied in
// memory only if the write succeeded, and is synced to disk (fsync) before the method
// returns. Concurrent changes share one fsync. Readers never wait for the disk: a change is
// visible to other callers from the moment its transaction commits, a few hundred
// microseconds before the caller that made it is told it is durable.
//
// # Keys and values
//
//	a/<userKey>                               an account
//	s/<sessionId>                             a session, as last written by a change
//	p/<uvarint len(userKey)><userKey><label>  a preference value
//	m/format                                  the format version (sessiond-badgerstore-3)
//
// Values are a compact binary encoding (a version byte, varints, length-prefixed strings),
// chosen so that a million sessions load in about two seconds, and Badger's tables are not
// compressed (decoding every block at load cost more than the disk space saved). Sessions
// removed by PurgeExpired or DeleteSessions are deleted from disk; Badger reclaims the space
// as it compacts. Close compacts level 0. Open loads from a read-only open of Badger, or a
// writable one after a crash, with compactions off, so that a restart does not share its two
// cores with a compaction, then reopens the database for writing and writes the repairs load
// found. With Options.EncryptionKey everything on disk is encrypted with AES and Open fails
// with ErrWrongKey if the key is not the one the store was created with.
//
// # Last-use times
//
// Touch, called on every request, only changes memory. A background writer, every
// Options.FlushInterval (1 s by default), and Flush and Close, append the last-use times of
// the sessions touched since to a log and sync it: files of their own in <Dir>/lastuse, not
// Badger, written sequentially in chunks of up to 2,048 sessions and deleted whole
// (lastusefile.go says why and how). At open each session takes the latest of the times in
// its s/ record and in every chunk, so a chunk can never set a session's times back,
// whatever the order of writes.
//
// The log is bounded by snapshots. Once a generation of the log holds entries for half as
// many sessions as there are (at least 65,536), the writer starts a new generation and, in
// one run, writes the current times of every session into it (about 45 bytes a session,
// read from memory 65,536 at a time); then it syncs and deletes the older generations. Every
// time in them was taken from memory before the new generation began, so the snapshot holds
// it or a later one. A crash or a failed write during a snapshot leaves both generations,
// which the next open reads and replaces with a new snapshot. Open reads one to one and a
// half entries per session (a snapshot and a log up to half as long); applying them is about
// a quarter of a restart at a million sessions, which is why the log is not let grow longer.
//
// # Last-use times after a crash
//
// Each run of the writer syncs what it wrote. So after a crash of the process or the
// machine a session's LastAccessedAt and LastActiveAt can be at most about FlushInterval
// older than they were (the record being written when it stopped is incomplete, and Open
// cuts it off). Everything else is never lost once acknowledged. Stale times can only make
// a session expire sooner: every session clock counts from a last-use time forward, so an
// older time ends the session earlier, never later, and a session can never outlive a limit
// because of a crash.
//
// # A full disk, a damaged table
//
// Badger writes its logs and tables through memory mappings, where a full disk is SIGBUS, not
// an error. Every write of the store first asks a space guard (spaceguard.go), which refuses
// it with ErrDiskFull (an engine.ErrUnavailable) while the file system's free space is under a
// reserve kept for Badger's own flushes and compactions; reads and token checks never ask it,
// CheckWrites (engine.WriteChecker) reports it, and it takes writes again by itself once space
// is freed. Open refuses to start without room for what Badger writes at open, and Close
// leaves Badger as a crash would without room for its close. Open verifies the checksum of
// every table it loads (openForLoad) and fails, naming the table, if one is damaged.
//
// # Older formats
//
// Open upgrades a store of format 1 (one t/<sessionId> key per touched session) or 2 (chunks
// under u/<generation><sequence> keys) in place: it reads those keys like chunks, marks the
// store as format 3 (after which an older sessiond refuses it with a message naming the
// formats it reads), and deletes them once the first snapshot in the files holds their
// times. Any other format is refused.
//
// # Leftovers
//
// Deleting an account with many thousands of sessions can take more than one Badger
// transaction; the account is deleted in the first. Sessions, t/ keys and preferences whose
// account or session no longer exists are ignored and deleted at the next open; last-use
// entries of deleted sessions are ignored, and dropped by the next snapshot.
package badgerstore
