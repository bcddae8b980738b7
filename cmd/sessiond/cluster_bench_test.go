package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine/redisstore/redistest"
)

// BenchmarkPingSession measures pingSession with a token (a store lookup and a keep-alive)
// over TCP: on one node with the embedded Badger store, and on nodes sharing one Redis
// (appendfsync always): all calls to one of them, then spread over two. Each client goroutine keeps one connection and one request in
// flight. It reports calls per second and latency percentiles. Client, nodes and Redis share
// the machine. For figures, build without the race detector:
//
//	SESSIOND_E2E_NORACE=1 go test ./cmd/sessiond -run '^$' -bench PingSession -benchtime 5s
func BenchmarkPingSession(b *testing.B) {
	badger := []*proc{startServer(b, "--data", b.TempDir(), "--tcp", "127.0.0.1:0", "--http", "off")}
	badgerTokens := benchSessions(b, badger[0])
	b.Run("badger-1node", func(b *testing.B) { benchPing(b, badger, badgerTokens) })

	srv := redistest.Start(b)
	var redis []*proc
	for range 2 {
		redis = append(redis, startServer(b, "--store", srv.URL(0), "--tcp", "127.0.0.1:0", "--http", "off"))
	}
	redisTokens := benchSessions(b, redis[0])
	b.Run("redis-1node", func(b *testing.B) { benchPing(b, redis[:1], redisTokens) })
	b.Run("redis-2nodes", func(b *testing.B) { benchPing(b, redis, redisTokens) })
}

// benchSessions logs in 64 API keys on node and returns their tokens.
func benchSessions(b testing.TB, node *proc) []string {
	login, err := dialRPC(node.tcpAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer login.close()
	tokens := make([]string, 64)
	for i := range tokens {
		rep, err := login.call("createSession", map[string]any{"username": "admin", "password": testAdminPassword, "permanentSession": true})
		if err != nil || rep.Error != nil {
			b.Fatalf("createSession: %v %+v", err, rep.Error)
		}
		var s sessionResult
		if err := json.Unmarshal(rep.Result, &s); err != nil {
			b.Fatal(err)
		}
		tokens[i] = s.AuthToken
	}
	return tokens
}

// benchPing pings the sessions through the nodes, each client connection on one node, round
// robin.
func benchPing(b *testing.B, nodes []*proc, tokens []string) {
	var next atomic.Int64
	var mu sync.Mutex
	var latencies []time.Duration
	b.SetParallelism(8) // 16 client connections on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		conn, err := dialRPC(nodes[i%len(nodes)].tcpAddr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.close()
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			began := time.Now()
			rep, err := conn.call("pingSession", map[string]any{"authToken": tokens[i%len(tokens)]})
			mine = append(mine, time.Since(began))
			if err != nil || rep.Error != nil {
				b.Errorf("pingSession: %v %+v", err, rep.Error)
				return
			}
			i++
		}
		mu.Lock()
		latencies = append(latencies, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.Logf("%s: %d calls, p50 %.0f µs, p99 %.0f µs", fmt.Sprint(len(nodes), " node(s)"), len(latencies), pct(0.5), pct(0.99))
}
