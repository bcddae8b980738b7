// Package redisstore is an engine.Store kept in Redis, so that several sessiond nodes share
// accounts, sessions, API keys, preferences, lockout counters and session caps: a key issued
// by one node works on every node at once, and a revocation on one holds on all.
//
// Nothing is cached between calls except the last-use times that Touch records (below):
// every lookup reads Redis, every change is one Lua script that Redis runs atomically (a
// change of many sessions, a script for each 1,000 of them).
//
// # Where Redis is
//
// Options.URL takes go-redis's URL forms:
//
//	redis://[user:password@]host:port/db       one server (rediss:// for TLS, unix:// for a socket)
//	redis+sentinel://host:port/db?master_name=NAME[&addr=host2:port…]
//	                                           the primary that Sentinel names, with failover
//	redis+cluster://host:port[?addr=host2:port…]
//	                                           Redis Cluster
//
// A redis:// URL with master_name is Sentinel, and with addr parameters Cluster. Query
// parameters set go-redis options by their snake_case names (dial_timeout, read_timeout,
// pool_size, …). The store's defaults are short: a one-second dial timeout, two-second read
// and write timeouts, one dial attempt and no automatic retries, so that a call fails within
// about two seconds when Redis is unreachable.
//
// # Keys
//
// Every key starts with Options.KeyPrefix (P below). One account's keys share the hash tag
// {u:<userKey>} ("}" and "%" in a username are escaped as %7D and %25), the indexes that
// span accounts share {g}:
//
//	P{u:<user>}:a          string  the account, as JSON
//	P{u:<user>}:p          hash    the account's preferences, label → value
//	P{u:<user>}:x          zset    the account's sessions: id, scored by expiry
//	P{u:<user>}:s:<id>     hash    a session: its JSON, and its last-use times and clocks
//	                               as separate fields (the scripts compute expiry from them)
//	P{g}:t:<sha256 hex>    string  token hash → session key
//	P{g}:i:<id>            string  session id → session key
//	P{g}:x                 zset    every session, scored by expiry (the global cap, purges)
//	P{g}:addr:<address>    zset    the sessions of a client address (the per-address cap)
//	P{g}:accounts          zset    every account key, score 0 (sorted, prefix listing)
//	P{g}:admins            set     the keys of the accounts with the admin role
//	P{g}:store             string  the store's marker, made by the first node and never
//	                               deleted: a node that finds it gone logs that the data is
//	                               lost (see "Watching Redis")
//
// Index scores are expiry times in Unix milliseconds rounded up (+inf for sessions that
// never expire), so a score range finds every session that may have expired; the exact
// check uses the session's own times, to the nanosecond, as engine.Session.Expired does.
//
// # Atomic changes, exact caps
//
// Each change is one script that checks and writes together: InsertSession checks that the
// account exists and counts the live sessions against each cap (removing, when a count has
// reached its cap, the sessions of that index that have expired) before it writes the
// session and its index entries; DeleteAccounts checks the last-admin rule and removes the
// accounts with all their sessions and preferences (accounts with over 1,000 sessions lose
// them 1,000 a script first, each after the same check, as DeleteSessions deletes 1,000 a
// script, so that neither blocks Redis for long); CreateAccount fails with
// engine.ErrAccountExists if the key is taken (so of several nodes bootstrapping the first
// admin, exactly one does). UpdateAccount and UpdateSession read, apply the caller's function
// in Go, and write with a compare-and-set script, retrying if the record changed meanwhile on
// any node; their function may therefore run more than once. Redis runs one script at a time
// and writes its effects to the append-only file as one transaction, so a change made by
// one script is never half-applied, also across a crash, and the caps hold exactly however many nodes insert at
// once.
//
// # Expiry and last-use times
//
// A session ends when the engine's clocks say so; the store compares the times it is given
// with the session's own. Each node decides with its own clock, so keep the nodes' clocks
// synchronized (NTP): a node whose clock is ahead ends sessions early, by as much. Redis TTLs
// only collect garbage: a session's keys expire TTLMargin (an hour) after the session would,
// and permanent sessions' keys never; an account's and an address's index of sessions expire
// with their longest-lived entry, so they do not keep the entries of records Redis dropped.
// Expired sessions disappear from every lookup, listing and cap at once; PurgeExpired (the
// engine's housekeeping, on every node) removes them and their index entries in batches, and
// drops the entries of the every-session index whose record Redis dropped.
//
// Touch, called on every authenticated request, costs no round trip: it records the use in
// memory, and a background writer sends the recorded uses of all sessions to Redis every
// Options.FlushInterval (default one second) in one script, which moves each time forward only
// (a use on another node written later never moves it back). Uses are kept in order, in runs
// that need one expiry check each (see useRun), and the script checks each run as memstore
// checks each use: uses made as the engine makes them, of a session just found live, leave the
// times memstore would, whatever their order and however writes fail. A use of a session that
// had already ended never revives it, but may be lost with the uses near it (the session then
// ends sooner), and, only if a write's reply is lost after the script ran and the uses are sent
// again, may extend it by the gap of an out-of-order use. A session keeps at most 64 runs
// between writes (more come only from out-of-order uses or failed writes); past that the run
// with the earliest latest use is dropped. This node's own reads apply the uses not yet
// written, so it sees them at once; other nodes see them after the next write. So a session
// used on any node stays alive on all, except that a use within FlushInterval of the session's
// end may not reach the other nodes (or a cap count there) before they consider it expired.
// Before operations whose result depends on them (a capped insert, an update or delete of a
// touched session, a purge), the node writes its recorded uses first. If Redis is unreachable,
// the recorded uses are kept and written when it returns (those of a write that failed part of
// the way, from where it failed); on Close they are written, and lost only if Redis is
// unreachable then (which only makes sessions expire sooner).
//
// # Durability
//
// A change the store acknowledged is kept across a crash of Redis or of its machine only if
// Redis syncs each write to its append-only file before replying (appendonly yes,
// appendfsync always) and never evicts keys (maxmemory-policy noeviction). Open reads these
// settings with CONFIG GET and logs a warning when they are weaker, or when CONFIG is
// disabled and it cannot tell. With appendfsync everysec a Redis crash can lose about the
// last second of acknowledged changes; without the append-only file, everything since the
// last snapshot. Replication to Sentinel or Cluster replicas is asynchronous: a change
// acknowledged by a primary that fails before replicating it can be missing on the replica
// that takes over (min-replicas-to-write narrows that window, it does not close it).
//
// # When Redis is unreachable
//
// Calls fail with an error wrapping engine.ErrUnavailable (also for replies such as LOADING,
// READONLY, MASTERDOWN, CLUSTERDOWN, OOM or MISCONF), quickly, and work again by themselves
// once Redis answers: go-redis drops broken connections and dials again. A change that
// failed because Redis could not be reached was not made. A change whose reply was lost
// (Redis or the network failed after the script ran, or the read timeout passed) may have
// been made; it is reported as unavailable all the same, and never retried automatically,
// since a retry could apply it twice.
//
// # Redis Cluster
//
// Redis Cluster runs a script only on keys of one hash slot, and the store's invariants
// span accounts: the global and per-address caps, the last-admin rule, the token index, an
// account's deletion with its sessions. So in Cluster mode the store puts all its keys in one
// slot: a KeyPrefix without a hash tag is wrapped in one ("sessiond:" becomes "{sessiond:}",
// an empty prefix "{sessiond}"), and the per-user tags above then only group key names. One
// deployment's data lives on one shard (with its replicas); Cluster gives failover and lets
// several deployments (prefixes) spread over the shards, not one deployment over several.
// Splitting one deployment across slots would need per-slot steps and compensation for the
// cross-slot invariants, with windows where a crash leaves work half done; this store does
// not do that.
//
// # Watching Redis
//
// What no call reports, each node logs: a warning when a call first finds Redis not
// answering (not one for each call), an information line when it answers again (looked at
// every second meanwhile), a warning at most once a minute while Redis refuses calls (OOM,
// READONLY, LOADING, …), the persistence settings again when they change (read every
// minute; CONFIG SET on a running Redis), and an error when the store's marker key is gone
// or another (read every minute): Redis restarted without its append-only file, or was
// flushed, and what the store held before is lost.
//
// # Costs
//
// A token lookup is one round trip running a short script; a change is one round trip plus
// Redis's fsync. A listing of sessions reads an index 1,000 entries a step (ZSCAN) and their
// records in a script a step, so it is not one instant's: a session live throughout is listed
// once, one created or ended meanwhile may be or not. ListAccounts reads the accounts index
// 1,000 names a step (in key order) and their records with one MGET a step, with the same
// guarantee. Purges, deletes, account drops (their sessions) and last-use writes work in
// batches of 1,000 too, so no call holds Redis up for other nodes' token checks for long.
package redisstore
