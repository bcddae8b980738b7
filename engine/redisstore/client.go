package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Client defaults, chosen so that an unreachable Redis fails a request within about a
// second or two instead of hanging it. A URL query parameter of the same name (go-redis's
// snake_case option names, e.g. read_timeout=5s) overrides each.
const (
	defaultDialTimeout  = time.Second
	defaultReadTimeout  = 2 * time.Second
	defaultWriteTimeout = 2 * time.Second
	defaultPoolTimeout  = 2 * time.Second
)

// Topology says how the store reaches Redis.
type Topology string

const (
	// Standalone is one Redis server (redis://, rediss://, unix://).
	Standalone Topology = "standalone"
	// Sentinel is a primary found through Redis Sentinel, with automatic failover.
	Sentinel Topology = "sentinel"
	// Cluster is Redis Cluster.
	Cluster Topology = "cluster"
)

// newClient builds the go-redis client a store URL describes:
//
//	redis://[user:password@]host:port[/db][?option=value…]     one server
//	rediss://…                                                 one server over TLS
//	unix://[user:password@]/path/to/socket[?db=N]              one server on a Unix socket
//	redis://[user:password@]sentinel:port[/db]?master_name=NAME[&addr=sentinel2:port…]
//	redis+sentinel://…                                         the same, Sentinel
//	redis://[user:password@]node:port?addr=node2:port[&addr=…]  Cluster (two or more seeds)
//	redis+cluster://[user:password@]node:port[?addr=…]          Cluster (any number of seeds)
//
// rediss+sentinel:// and rediss+cluster:// use TLS. The forms and options are go-redis's
// ParseURL, ParseFailoverURL and ParseClusterURL.
func newClient(raw string) (redis.UniversalClient, Topology, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the URL, password included: say less.
		return nil, "", errors.New("redisstore: the store URL does not parse as a URL: write it redis://HOST:PORT/DB, with special characters of a password in it percent-encoded (%40 for @, %25 for %)")
	}
	if u.Host == "" && u.Scheme != "unix" {
		return nil, "", errors.New("redisstore: the store URL names no host: write it redis://HOST:PORT/DB")
	}
	q := u.Query()
	topology := Standalone
	switch u.Scheme {
	case "redis", "rediss":
		switch {
		case q.Has("master_name"):
			topology = Sentinel
		case q.Has("addr"):
			topology = Cluster
		}
	case "unix":
	case "redis+sentinel", "rediss+sentinel":
		topology = Sentinel
		u.Scheme = strings.TrimSuffix(u.Scheme, "+sentinel")
	case "redis+cluster", "rediss+cluster":
		topology = Cluster
		u.Scheme = strings.TrimSuffix(u.Scheme, "+cluster")
	default:
		return nil, "", fmt.Errorf("redisstore: unsupported URL scheme %q: use redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://", u.Scheme)
	}
	text := u.String()
	off := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch topology {
	case Sentinel:
		o, err := redis.ParseFailoverURL(text)
		if err != nil {
			return nil, "", fmt.Errorf("redisstore: Sentinel URL: %w", err)
		}
		if o.MasterName == "" {
			return nil, "", errors.New("redisstore: a Sentinel URL needs master_name=NAME")
		}
		limits(q, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		o.DisableIdentity = true
		return redis.NewFailoverClient(o), topology, nil
	case Cluster:
		o, err := redis.ParseClusterURL(text)
		if err != nil {
			return nil, "", fmt.Errorf("redisstore: Cluster URL: %w", err)
		}
		limits(q, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		o.DisableIdentity = true
		o.MaintNotificationsConfig = off
		return redis.NewClusterClient(o), topology, nil
	default:
		o, err := redis.ParseURL(text)
		if err != nil {
			return nil, "", fmt.Errorf("redisstore: URL: %w", err)
		}
		limits(q, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.DialerRetries)
		o.ContextTimeoutEnabled = true
		o.DisableIdentity = true
		o.MaintNotificationsConfig = off
		return redis.NewClient(o), topology, nil
	}
}

// limits applies the store's defaults to the options the URL did not set: short timeouts,
// one dial attempt, and no automatic retries. A retried script could apply a change twice
// (the first attempt may have run before the connection broke); the caller gets
// engine.ErrUnavailable instead and decides.
func limits(q url.Values, dial, read, write, pool *time.Duration, maxRetries, dialerRetries *int) {
	set := func(name string, d *time.Duration, v time.Duration) {
		if !q.Has(name) {
			*d = v
		}
	}
	set("dial_timeout", dial, defaultDialTimeout)
	set("read_timeout", read, defaultReadTimeout)
	set("write_timeout", write, defaultWriteTimeout)
	set("pool_timeout", pool, defaultPoolTimeout)
	if !q.Has("max_retries") {
		*maxRetries = -1
	}
	if !q.Has("dialer_retries") {
		*dialerRetries = 1
	}
}

// RedactURL returns the URL with any user name and password replaced by "…", and the value of
// any parameter whose name contains "password" by REDACTED, for logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	// A Sentinel URL carries the main servers' password as a parameter.
	if q := u.Query(); len(q) > 0 {
		redacted := false
		for name := range q {
			if strings.Contains(strings.ToLower(name), "password") {
				q.Set(name, "REDACTED")
				redacted = true
			}
		}
		if redacted {
			u.RawQuery = q.Encode()
		}
	}
	if u.User == nil {
		return u.String()
	}
	u.User = nil
	text := u.String()
	if i := strings.Index(text, "://"); i >= 0 {
		return text[:i+3] + "…@" + text[i+3:]
	}
	return text
}

// RouteClientLogs sends the messages of go-redis, which logs through one process-wide logger
// (to stderr by default), to logger at debug level. The store reports what matters itself
// (calls fail with engine.ErrUnavailable; the background writer warns once per outage), so
// go-redis's line per failed dial is detail.
func RouteClientLogs(logger *slog.Logger) {
	redis.SetLogger(clientLogger{logger})
}

type clientLogger struct{ log *slog.Logger }

func (l clientLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "go-redis")
}
