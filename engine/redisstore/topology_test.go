package redisstore

import (
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/redisstore/redistest"
	"github.com/sessiond/sessiond/engine/storetest"
)

// TestClusterConformance runs the conformance suite against a real three-node Redis Cluster
// (redis+cluster:// URL), where every script must find its keys in one slot.
func TestClusterConformance(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	servers := redistest.StartCluster(t, 3, "--appendfsync", "everysec") // fsync is not what this tests
	url := redistest.ClusterURL(servers)
	var mu sync.Mutex
	prefixOf := map[engine.Store]string{}
	open := func(t *testing.T, prefix string) engine.Store {
		s := openStore(t, nil, prefix, func(o *Options) { o.URL = url })
		if s.Topology() != Cluster || !strings.HasPrefix(s.KeyPrefix(), "{") {
			t.Fatalf("topology %s, key prefix %q; want cluster and a hash-tagged prefix", s.Topology(), s.KeyPrefix())
		}
		mu.Lock()
		prefixOf[s] = prefix
		mu.Unlock()
		return s
	}
	storetest.Run(t, storetest.Factory{
		// Different prefixes land in different slots, so the suite spreads over all nodes.
		Open: func(t *testing.T) engine.Store { return open(t, freshPrefix("cluster")) },
		Reopen: func(t *testing.T, old engine.Store) engine.Store {
			mu.Lock()
			prefix := prefixOf[old]
			mu.Unlock()
			return open(t, prefix)
		},
	})
}

// A store opened through Redis Sentinel (redis+sentinel:// with master_name) works, and
// shares its data with a store opened on the primary directly.
func TestRedisSentinel(t *testing.T) {
	primary := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, primary, "mymaster")
	prefix := freshPrefix("sentinel")
	viaSentinel := openStore(t, nil, prefix, func(o *Options) {
		o.URL = "redis+sentinel://" + sentinel.Addr + "/0?master_name=mymaster"
	})
	direct := openStore(t, primary, prefix)
	if viaSentinel.Topology() != Sentinel {
		t.Fatalf("topology %s; want sentinel", viaSentinel.Topology())
	}
	mustCreate(t, viaSentinel, newAccount("u"))
	s := newSession("u")
	mustInsert(t, viaSentinel, s)
	if !found(t, direct, s, testNow) {
		t.Error("a session inserted through Sentinel is not on the primary")
	}
	if list, err := viaSentinel.Persistence(ctx); err != nil || len(list) != 1 || !list[0].Durable() {
		t.Errorf("Persistence through Sentinel = %+v, %v; want the primary's durable settings", list, err)
	}
}

// TestRedactURL checks that no password of a store URL reaches what RedactURL returns, the
// user-info one or a Sentinel URL's parameter.
func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://user:secret@127.0.0.1:6379/0", "redis://…@127.0.0.1:6379/0"},
		{"redis+sentinel://:secret@127.0.0.1:26379/0?master_name=m&password=MAIN", "redis+sentinel://…@127.0.0.1:26379/0?master_name=m&password=REDACTED"},
		{"redis+sentinel://127.0.0.1:26379/0?master_name=m&sentinel_password=S&password=MAIN", "redis+sentinel://127.0.0.1:26379/0?master_name=m&password=REDACTED&sentinel_password=REDACTED"},
		{"redis://%zz", "(an unparsable URL)"},
	} {
		got := RedactURL(tc.url)
		if got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.url, got, tc.want)
		}
		for _, secret := range []string{"secret", "MAIN", "=S"} {
			if strings.Contains(got, secret) {
				t.Errorf("RedactURL(%q) = %q: it holds %q", tc.url, got, secret)
			}
		}
	}
}

// Open's refusals say what to write instead: a URL without a scheme or a host, a password,
// database or scheme Redis refuses; and a URL's password stays out of them.
func TestOpenRefusalsSayWhatToDo(t *testing.T) {
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	if err := admin.ConfigSet(ctx, "requirepass", "right-secret").Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, want string }{
		{"127.0.0.1:6379", "write it redis://HOST:PORT/DB"},
		{"redis:/127.0.0.1:6379", "names no host"},
		{"redis://:wrong-secret@" + srv.Addr + "/0", "Redis refused to serve the store"},
		{"redis://:right-secret@" + srv.Addr + "/99", "the database number"},
		{"redis+cluster://:right-secret@" + srv.Addr, "redis+cluster:// for a Cluster"},
	} {
		s, err := Open(ctx, Options{URL: tc.url, Logger: quietLogger})
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded; want a refusal", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) = %v; want it to say %q, and no password", tc.url, err, tc.want)
		}
	}
}
