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
//	t/<sessionId>                             its last-use times, as last written by Touch
//	p/<uvarint len(userKey)><userKey><label>  a preference value
//	m/format                                  the format version
//
// Values are a compact binary encoding (a version byte, varints, length-prefixed strings),
// chosen so that a million sessions load in seconds. Sessions removed by PurgeExpired or
// DeleteSessions are deleted from disk; Badger reclaims the space as it compacts. With
// Options.EncryptionKey everything on disk is encrypted with AES and Open fails with
// ErrWrongKey if the key is not the one the store was created with.
//
// # Last-use times after a crash
//
// Touch, called on every request, only changes memory. The new last-use times are written
// under the session's t/ key by a background writer every Options.FlushInterval (1 s by
// default), by Flush, and by Close, and a session's t/ key is never allowed to overwrite a
// newer full record: at open each session takes the later of the two times. The background
// writes are not synced on their own; the next synced change or Flush makes them durable.
//
// So after a process crash a session's LastAccessedAt and LastActiveAt can be at most
// FlushInterval older than they were, and after a machine crash at most as old as the last
// fsync (the last acknowledged change or Flush). Everything else is never lost once
// acknowledged. Stale times can only make a session expire sooner: every session clock
// counts from a last-use time forward, so an older time ends the session earlier, never
// later, and a session can never outlive a limit because of a crash.
//
// # Leftovers
//
// Deleting an account with many thousands of sessions can take more than one Badger
// transaction; the account is deleted in the first. Sessions, t/ keys and preferences whose
// account or session no longer exists are ignored and deleted at the next open.
package badgerstore
