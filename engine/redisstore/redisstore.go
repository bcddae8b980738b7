package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/engine"
)

// ErrClosed is returned by every method of a closed Store. It wraps engine.ErrUnavailable.
var ErrClosed = fmt.Errorf("%w: the store is closed", engine.ErrUnavailable)

// DefaultFlushInterval is how often Touch updates are written when Options.FlushInterval is 0.
const DefaultFlushInterval = time.Second

// TTLMargin is how long after a session's expiry Redis keeps its keys. Expiry is decided by
// the engine's clock; the Redis TTL only collects garbage, late enough that clock differences
// between the nodes and Redis never remove a live session.
const TTLMargin = time.Hour

// Options configure Open.
type Options struct {
	// URL says where Redis is: redis://host:port/db, rediss://… for TLS, or the Sentinel and
	// Cluster forms (see the package documentation).
	URL string
	// KeyPrefix starts every key of the store, so that several deployments can share one
	// Redis database. It may be empty. In Cluster mode, a prefix without a hash tag is
	// wrapped in one ("sessiond:" becomes "{sessiond:}"), so that all keys share a slot.
	KeyPrefix string
	// Logger receives the store's warnings (default slog.Default()).
	Logger *slog.Logger
	// FlushInterval is how often Touch updates are written to Redis in the background
	// (default DefaultFlushInterval). A negative value turns the background writer off;
	// Flush and Close still write them.
	FlushInterval time.Duration

	// watchTick and watchEvery replace the watcher's intervals (tests; a negative watchTick
	// starts no watcher).
	watchTick, watchEvery time.Duration
}

// Store is an engine.Store kept in Redis, which several sessiond processes can share. It is
// safe for concurrent use.
type Store struct {
	rdb      redis.UniversalClient
	topology Topology
	keys     keyspace
	log      *slog.Logger

	touches touchBuffer
	flushMu sync.Mutex // one write of last-use times at a time

	// life is held shared by every call and exclusively by Close, so Close waits for calls
	// in progress and none starts afterwards.
	life   sync.RWMutex
	closed bool

	unreachable atomic.Bool   // a call found Redis not answering, and it has not since (watch)
	refusedAt   atomic.Int64  // when a refusal (OOM, READONLY, …) was last logged, UnixNano
	persistence []Persistence // the settings last logged; the watcher's
	marker      string        // the store's marker key's value; the watcher's

	stop      chan struct{}
	flusher   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ engine.Store = (*Store)(nil)

// Open connects to Redis, checks that it answers and how it persists writes (logging a
// warning when that is weaker than "acknowledged means kept", see Persistence), and starts
// the background writer of last-use times. It fails with an error wrapping
// engine.ErrUnavailable when Redis cannot be reached.
func Open(ctx context.Context, opts Options) (*Store, error) {
	rdb, topology, err := newClient(opts.URL)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	interval := opts.FlushInterval
	if interval == 0 {
		interval = DefaultFlushInterval
	}
	s := &Store{
		rdb:      rdb,
		topology: topology,
		keys:     newKeyspace(opts.KeyPrefix, topology == Cluster),
		log:      logger,
		stop:     make(chan struct{}),
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		rdb.Close()
		var reply redis.Error
		switch {
		case replyStartsWith(err, notReadyReplies):
			return nil, fmt.Errorf("%w: Redis is not ready: %v", engine.ErrUnavailable, err)
		case errors.As(err, &reply):
			return nil, fmt.Errorf("redisstore: Redis refused to serve the store: %v (check the URL: the password or user, the database number, and the scheme: redis+cluster:// for a Cluster, redis+sentinel:// through Sentinel)", err)
		}
		return nil, fmt.Errorf("%w: Redis does not answer: %v", engine.ErrUnavailable, err)
	}
	s.persistence, err = s.Persistence(pingCtx)
	s.logPersistence(s.persistence, err)
	if s.marker, err = s.claimMarker(pingCtx); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("%w: redisstore: reading the store's marker: %w", engine.ErrUnavailable, err)
	}
	if interval > 0 {
		s.flusher.Add(1)
		go s.flushEvery(interval)
	}
	if opts.watchTick >= 0 {
		s.flusher.Add(1)
		go s.watch(cmp.Or(opts.watchTick, watchTick), cmp.Or(opts.watchEvery, watchEvery))
	}
	return s, nil
}

// Topology says whether the store talks to one server, through Sentinel, or to a Cluster.
func (s *Store) Topology() Topology { return s.topology }

// KeyPrefix is the prefix every key of the store starts with (in Cluster mode, with the hash
// tag Open added).
func (s *Store) KeyPrefix() string { return s.keys.prefix }

// Persistence is how one Redis server keeps writes, as CONFIG GET reports it.
type Persistence struct {
	// Server is the address of the server asked.
	Server string
	// AppendOnly is the appendonly setting: "yes" or "no".
	AppendOnly string
	// AppendFsync is the appendfsync setting: "always", "everysec" or "no".
	AppendFsync string
	// MaxmemoryPolicy is the maxmemory-policy setting, e.g. "noeviction" or "allkeys-lru".
	MaxmemoryPolicy string
}

// Durable reports whether the server keeps every write it acknowledged: it syncs each to
// its append-only file before replying (appendonly yes, appendfsync always), so a crash of
// Redis or of its machine loses nothing, and it never evicts keys to free memory
// (maxmemory-policy noeviction; at the memory limit writes fail instead, and the store
// reports engine.ErrUnavailable).
func (p Persistence) Durable() bool {
	return p.AppendOnly == "yes" && p.AppendFsync == "always" && p.MaxmemoryPolicy == "noeviction"
}

// Persistence asks each Redis primary the store writes to how it persists writes. It fails
// when CONFIG GET is refused (some managed services disable or rename it).
func (s *Store) Persistence(ctx context.Context) ([]Persistence, error) {
	ask := func(ctx context.Context, c *redis.Client) (Persistence, error) {
		appendCfg, err := c.ConfigGet(ctx, "append*").Result()
		if err != nil {
			return Persistence{}, err
		}
		memoryCfg, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
		if err != nil {
			return Persistence{}, err
		}
		return Persistence{Server: c.Options().Addr, AppendOnly: appendCfg["appendonly"],
			AppendFsync: appendCfg["appendfsync"], MaxmemoryPolicy: memoryCfg["maxmemory-policy"]}, nil
	}
	switch c := s.rdb.(type) {
	case *redis.Client:
		p, err := ask(ctx, c)
		if err != nil {
			return nil, err
		}
		return []Persistence{p}, nil
	case *redis.ClusterClient:
		var mu sync.Mutex
		var out []Persistence
		err := c.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			p, err := ask(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			out = append(out, p)
			return err
		})
		if err != nil {
			return nil, err
		}
		slices.SortFunc(out, func(a, b Persistence) int { return strings.Compare(a.Server, b.Server) })
		return out, nil
	}
	return nil, fmt.Errorf("redisstore: unexpected client type %T", s.rdb)
}

// logPersistence logs the persistence of each server list names: a warning for every one
// weaker than the store's durability contract needs, or when it cannot tell (err).
func (s *Store) logPersistence(list []Persistence, err error) {
	if err != nil {
		s.log.Warn("redisstore: cannot read the Redis persistence settings (CONFIG GET failed); every acknowledged change is kept only with appendonly yes, appendfsync always and maxmemory-policy noeviction",
			"err", err)
		return
	}
	for _, p := range list {
		switch {
		case p.Durable():
			s.log.Info("redisstore: Redis syncs every write to its append-only file and evicts nothing", "server", p.Server)
		case p.MaxmemoryPolicy != "noeviction" && p.AppendOnly == "yes" && p.AppendFsync == "always":
			s.log.Warn("redisstore: Redis may evict keys to free memory, which would silently end sessions and delete accounts; set maxmemory-policy noeviction",
				"server", p.Server, "maxmemory-policy", p.MaxmemoryPolicy)
		default:
			s.log.Warn("redisstore: Redis persistence is weaker than sessiond's promise that every acknowledged change is kept: a Redis crash can lose acknowledged changes; set appendonly yes and appendfsync always (and maxmemory-policy noeviction)",
				"server", p.Server, "appendonly", p.AppendOnly, "appendfsync", p.AppendFsync, "maxmemory-policy", p.MaxmemoryPolicy)
		}
	}
}

// Flush writes pending Touch updates to Redis.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.writeTouches(ctx)
}

// Close writes pending Touch updates and closes the connections. Calls in progress finish
// first; later calls fail with ErrClosed. Close may be called more than once. An error means
// the last Touch updates could not be written (Redis was unreachable); they are lost, which
// only makes sessions expire sooner.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.flusher.Wait()
		s.life.Lock()
		s.closed = true
		s.life.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		s.closeErr = errors.Join(s.writeTouches(ctx), s.rdb.Close())
	})
	return s.closeErr
}

// enter starts a call: it fails with ErrClosed once Close has begun. On success the caller
// must call leave.
func (s *Store) enter() error {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.life.RUnlock() }

// notReadyReplies are the Redis error replies that mean "not now" rather than "wrong".
var notReadyReplies = []string{
	"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "OOM", "MISCONF",
	"NOREPLICAS", "BUSY",
}

// authReplies refuse the client's credentials: at Open a mistake in the URL; later a
// password changed under a running node, which is unavailable until it is given the new one.
var authReplies = []string{"NOAUTH", "WRONGPASS"}

// fail turns an error from go-redis into the store's error: engine.ErrUnavailable (wrapped)
// when Redis could not be reached or cannot take the request now, the context's error when
// the caller gave up, ErrClosed after Close, and otherwise the error itself.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.ErrClosed) {
		return ErrClosed
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			s.noteUnavailable(op, err) // no answer in the caller's time (a health probe's)
		}
		return fmt.Errorf("redisstore: %s: %w", op, ctxErr)
	}
	if isRefusal(err) {
		s.noteRefusal(op, err)
		return fmt.Errorf("%w: redisstore: %s: %w", engine.ErrUnavailable, op, err)
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	s.noteUnavailable(op, err)
	return fmt.Errorf("%w: redisstore: %s: %w", engine.ErrUnavailable, op, err)
}

// isRefusal reports whether err is a Redis reply that makes the store unavailable rather
// than the call wrong: notReadyReplies and authReplies.
func isRefusal(err error) bool {
	return replyStartsWith(err, notReadyReplies) || replyStartsWith(err, authReplies)
}

// replyStartsWith reports whether err is a Redis error reply that starts with one of prefixes.
func replyStartsWith(err error, prefixes []string) bool {
	var reply redis.Error
	return errors.As(err, &reply) && slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(reply.Error(), p) })
}
