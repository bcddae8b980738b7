package rpc

// Benchmarks of the whole request path of the real service: frame → parse → dispatch →
// params decode → engine → store → reply encoding, without a transport (serveFrame), and the
// same over a connection (net.Pipe, so the kernel stays out of the figures).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/enginetest"
	"github.com/sessiond/sessiond/engine/memstore"
)

// pathEngineConfig is the engine configuration of the request path's benchmarks: the
// defaults, and a cheap password hash.
func pathEngineConfig() engine.Config {
	return engine.Config{
		Defaults: engine.Defaults{
			Settings: engine.SessionSettings{
				DefaultAPI: "admin", DefaultDebug: "none", DefaultDatabaseName: "faircom",
				DefaultOwnerName: "admin", DefaultBinaryFormat: "hex",
				DefaultResponseOptions: engine.ResponseOptions{BinaryFormat: "hex", DataFormat: "arrays", NumberFormat: "number"},
				DefaultRetentionPolicy: "autoPurge", DefaultRetentionUnit: "week", DefaultRetentionPeriod: 4,
				IdleConnectionTimeoutSeconds: 3600, IdleCursorTimeoutSeconds: 600,
			},
		},
		NetX:                 engine.NetXProperties{SessionDurationMinutes: 30, InactivityTimeoutMinutes: 60},
		Hash:                 enginetest.CheapHash,
		HousekeepingInterval: -1,
	}
}

// benchPathService is a Service on a memstore engine with n live sessions of the admin
// inserted directly into the store (logging in n times would only measure argon2). It
// returns the service and the sessions' tokens.
func benchPathService(b testing.TB, n int) (*Service, []string) {
	b.Helper()
	store := memstore.New(memstore.Options{})
	cfg := pathEngineConfig()
	eng, err := engine.New(store, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	ctx := context.Background()
	if _, err := eng.Bootstrap(ctx, "admin", "bench-password"); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tokens := make([]string, n)
	for i := range tokens {
		tok, err := engine.NewToken(rand.Reader, false)
		if err != nil {
			b.Fatal(err)
		}
		parsed, _ := engine.ParseToken(tok)
		s := &engine.Session{
			ID: fmt.Sprintf("ses_bench%09d", i), TokenHash: parsed.Hash, Username: "admin",
			Origin: engine.OriginAuthenticate, Settings: cfg.Defaults.Settings,
			InactivitySeconds: 3600, CreatedAt: now, LastAccessedAt: now, LastActiveAt: now,
			ClientAddress: "127.0.0.1",
		}
		if err := store.InsertSession(ctx, s, engine.Caps{}, now); err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok
	}
	return NewService(eng, []byte(`{}`), slog.New(slog.DiscardHandler)), tokens
}

// pathFrames are the requests of the path benchmarks, one per token.
var pathFrames = map[string]func(id int, token string) string{
	"pingSession": func(id int, token string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"pingSession","params":{"authToken":%q}}`, id, token)
	},
	"tickle": func(id int, token string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"setUserPreference","params":[%q,{"label":"TickleTime","value":"2026-01-01T00:00:00Z"}]}`, id, token)
	},
	"describeSessions": func(id int, token string) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"describeSessions","params":{"authToken":%q,"authTokens":[%q]}}`, id, token, token)
	},
}

// BenchmarkRequestPath measures one request of the real service through serveFrame: parse,
// dispatch, params decode, engine, store and reply encoding, at 1,000 live sessions (and
// pingSession at 1,000,000 too). Tokens rotate so the store's indexes are really searched.
func BenchmarkRequestPath(b *testing.B) {
	for _, bc := range []struct {
		method   string
		sessions int
	}{
		{"pingSession", 1_000}, {"tickle", 1_000}, {"describeSessions", 1_000}, {"pingSession", 1_000_000},
	} {
		b.Run(fmt.Sprintf("%s/sessions=%d", bc.method, bc.sessions), func(b *testing.B) {
			service, tokens := benchPathService(b, bc.sessions)
			frames := make([][]byte, min(len(tokens), 4096))
			for i := range frames {
				frames[i] = []byte(pathFrames[bc.method](i+1, tokens[i*len(tokens)/len(frames)]))
			}
			srv := NewServer(service, Options{Logger: slog.New(slog.DiscardHandler)})
			client := ClientInfo{Addr: "127.0.0.1", Transport: TransportTCP}
			ctx := context.Background()
			// Check the reply once: a benchmark of errors would be meaningless.
			out := getOut()
			srv.serveFrame(ctx, frames[0], client, "", out)
			if strings.Contains(string(out.b), `"error"`) {
				b.Fatalf("%s", out.b)
			}
			putOut(out)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for i := 0; b.Loop(); i++ {
				out := getOut()
				srv.serveFrame(ctx, frames[i%len(frames)], client, "", out)
				putOut(out)
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkPingSessionPath is pingSession with a valid token, one client over a connection
// (net.Pipe): framing, the request path and the buffered reply write, answered on the
// reader goroutine (inline, as the Service's quick methods are) or handed to a handler
// goroutine (handoff, as any other method). Allocations count both sides; the client side
// allocates nothing.
func BenchmarkPingSessionPath(b *testing.B) {
	service, tokens := benchPathService(b, 1000)
	frames := make([][]byte, len(tokens))
	for i, tok := range tokens {
		frames[i] = []byte(pathFrames["pingSession"](i+1, tok) + "\n")
	}
	for _, bc := range []struct {
		name string
		d    Dispatcher
	}{{"inline", service}, {"handoff", DispatcherFunc(service.Dispatch)}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := NewServer(bc.d, Options{Logger: slog.New(slog.DiscardHandler)})
			clientEnd, serverEnd := net.Pipe()
			srv.startTCP(serverEnd)
			defer clientEnd.Close()
			rd := bufio.NewReader(clientEnd)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for i := 0; b.Loop(); i++ {
				if _, err := clientEnd.Write(frames[i%len(frames)]); err != nil {
					b.Fatal(err)
				}
				line, err := rd.ReadSlice('\n')
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 && !strings.Contains(string(line), `"result":{}`) {
					b.Fatalf("%s", line)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// reportCPU reports the CPU time per operation since start: unlike ns/op it hardly moves
// when other processes compete for the cores, so it compares runs on a busy machine.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

// TestQuickPathAllocs checks what a quick request answered through serveFrame allocates: a
// pingSession nothing (the Call and the params are reused, and the token is not copied:
// QuickDispatcher, Method.Quick), a tickle no more than its two known allocations.
func TestQuickPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled objects at random")
	}
	service, tokens := benchPathService(t, 1)
	srv := NewServer(service, Options{Logger: slog.New(slog.DiscardHandler)})
	client := ClientInfo{Addr: "127.0.0.1", Transport: TransportTCP}
	for _, tc := range []struct {
		method, result string
		most           float64
	}{
		{"pingSession", `"result":{}`, 0},
		{"tickle", `"result":true`, 2},
	} {
		frame := []byte(pathFrames[tc.method](1, tokens[0]))
		serve := func() {
			out := getOut()
			srv.serveFrame(context.Background(), frame, client, "", out)
			if !bytes.Contains(out.b, []byte(tc.result)) {
				t.Fatalf("%s", out.b)
			}
			putOut(out)
		}
		serve() // interns the method name
		if n := testing.AllocsPerRun(1000, serve); n > tc.most {
			t.Errorf("%s allocates %.1f times a request, want at most %.0f", tc.method, n, tc.most)
		}
	}
}

// lookupStore is a store that checks tokens with a lookup and a separate touch, as the Redis
// store does with its round trips: it hides memstore's TokenToucher.
type lookupStore struct{ engine.Store }

// TestServiceNeverWaits checks which methods the service lets the event loop answer:
// pingSession alone, and only on a store that checks tokens in memory.
func TestServiceNeverWaits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store engine.Store
		want  []string
	}{
		{"in memory", memstore.New(memstore.Options{}), []string{"describeSessions", "pingSession", "setUserPreference"}},
		{"with round trips", lookupStore{memstore.New(memstore.Options{})}, nil},
	} {
		eng, err := engine.New(tc.store, pathEngineConfig())
		if err != nil {
			t.Fatal(err)
		}
		service := NewService(eng, nil, nil)
		var got []string
		for _, m := range Methods {
			if service.NeverWaits(m.Name) {
				got = append(got, m.Name)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: methods that never wait %v, want %v", tc.name, got, tc.want)
		}
		eng.Close()
	}
}
