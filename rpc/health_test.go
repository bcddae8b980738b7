package rpc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/internal/syncbuf"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/schemas"
)

// downStore is a memstore whose lookups by token fail as an unreachable Redis's do while
// down is set, and which refuses changes as badgerstore does on a nearly full disk while full
// is set (engine.WriteChecker).
type downStore struct {
	engine.Store
	down, full atomic.Bool
}

func (s *downStore) CheckWrites(context.Context) error {
	if s.full.Load() {
		return fmt.Errorf("%w: test: the disk is nearly full", engine.ErrUnavailable)
	}
	return nil
}

func (s *downStore) SessionByTokenHash(ctx context.Context, h engine.TokenHash, now time.Time) (*engine.Session, error) {
	if s.down.Load() {
		return nil, fmt.Errorf("%w: test: connection refused", engine.ErrUnavailable)
	}
	return s.Store.SessionByTokenHash(ctx, h, now)
}

// GET and HEAD /health say whether the server can serve calls: 200 while the store answers,
// 503 with the error a call would get while it does not or refuses changes; other methods
// there stay JSON-RPC.
func TestHTTPHealth(t *testing.T) {
	store := &downStore{Store: memstore.New(memstore.Options{})}
	eng := newEngine(t, store, serviceConfig(newFakeClock()))
	srv := rpc.NewServer(rpc.NewService(eng, schemas.OpenRPC, nil), rpc.Options{})
	ts := httptest.NewServer(srv.HTTPHandler())
	t.Cleanup(ts.Close)

	const unavailable = `{"status":"unavailable","error":{"code":1010,"message":"The session store is unavailable; retry later.","data":{"reason":"storeUnavailable"}}}` + "\n"
	for _, tc := range []struct {
		name, method, path string
		down, full         bool
		status             int
		body               string
	}{
		{"serving", http.MethodGet, "/health", false, false, 200, `{"status":"serving"}` + "\n"},
		{"HEAD has no body", http.MethodHead, "/health", false, false, 200, ""},
		{"store down", http.MethodGet, "/health", true, false, 503, unavailable},
		{"HEAD store down", http.MethodHead, "/health", true, false, 503, ""},
		{"back up", http.MethodGet, "/health", false, false, 200, `{"status":"serving"}` + "\n"},
		{"changes refused (disk full)", http.MethodGet, "/health", false, true, 503, unavailable},
		{"changes taken again", http.MethodGet, "/health", false, false, 200, `{"status":"serving"}` + "\n"},
		{"another path", http.MethodGet, "/healthz", false, false, 405, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":{"reason":"httpMethodNotAllowed"}},"id":null}` + "\n"},
		{"POST is JSON-RPC", http.MethodPost, "/health", false, false, 200, ""},
	} {
		store.down.Store(tc.down)
		store.full.Store(tc.full)
		var body io.Reader
		if tc.method == http.MethodPost {
			body = strings.NewReader(`{"jsonrpc":"2.0","method":"pingSession","id":1}`)
		}
		req, _ := http.NewRequest(tc.method, ts.URL+tc.path, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tc.method == http.MethodPost {
			if !strings.Contains(string(got), `"jsonrpc":"2.0"`) {
				t.Errorf("%s: %d %s; want a JSON-RPC reply", tc.name, resp.StatusCode, got)
			}
			continue
		}
		if resp.StatusCode != tc.status || string(got) != tc.body {
			t.Errorf("%s: %d %q; want %d %q", tc.name, resp.StatusCode, got, tc.status, tc.body)
		}
		if tc.method == http.MethodHead && resp.ContentLength <= 0 {
			t.Errorf("%s: Content-Length %d; want the GET body's", tc.name, resp.ContentLength)
		}
	}
}

// accountsDownStore is a memstore whose account reads fail as an unreachable Redis's do while
// down is set.
type accountsDownStore struct {
	engine.Store
	down atomic.Bool
}

func (s *accountsDownStore) GetAccount(ctx context.Context, userKey string) (*engine.Account, error) {
	if s.down.Load() {
		return nil, fmt.Errorf("%w: test: connection refused", engine.ErrUnavailable)
	}
	return s.Store.GetAccount(ctx, userKey)
}

// authenticate answers "-1" for a store that does not answer, as for any failure (API.md),
// and logs why, where createSession answers 1010.
func TestAuthenticateStoreDown(t *testing.T) {
	store := &accountsDownStore{Store: memstore.New(memstore.Options{})}
	eng := newEngine(t, store, serviceConfig(newFakeClock()))
	if _, err := eng.Bootstrap(context.Background(), "admin", adminPassword); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	s := &svc{t: t, s: rpc.NewService(eng, schemas.OpenRPC, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))), eng: eng}
	login := mustJSON([]string{"admin", adminPassword})
	if r := s.rawCall("authenticate", login, "", loopback); r.err != nil || len(r.result) < 10 {
		t.Fatalf("with the store up: %v, want a session key", r)
	}
	store.down.Store(true)
	if r := s.rawCall("authenticate", login, "", loopback); r.err != nil || string(r.result) != `"-1"` {
		t.Errorf("with the store down: %v, want \"-1\"", r)
	}
	if !strings.Contains(logs.String(), `level=DEBUG msg="rpc: authenticate answered \"-1\": the store is unavailable"`) {
		t.Errorf("not logged: %q", logs.String())
	}
	if r := s.call("createSession", map[string]any{"username": "admin", "password": adminPassword}); r.code() != rpc.CodeStoreUnavailable {
		t.Errorf("createSession with the store down: %v, want 1010", r)
	}
}
