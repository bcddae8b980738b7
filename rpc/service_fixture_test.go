package rpc_test

// This file holds the fixture shared by the black-box tests of rpc.Service (authorization,
// brute force, params fuzzing): a real engine on a memstore with a fake clock and cheap hashing.

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/enginetest"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/schemas"
)

// fakeClock is a settable clock, so expiry is tested without sleeping.
type fakeClock = enginetest.Clock

func newFakeClock() *fakeClock {
	return enginetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
}

// serviceConfig is the engine configuration of the service tests: the documented defaults
// with permanent sessions off, cheap hashing, no background loop and the fake clock.
func serviceConfig(clock engine.Clock) engine.Config {
	return engine.Config{
		Defaults: engine.Defaults{
			Settings: engine.SessionSettings{
				DefaultAPI: "admin", DefaultDebug: "none", DefaultDatabaseName: "faircom",
				DefaultOwnerName: "admin", DefaultBinaryFormat: "hex",
				DefaultResponseOptions: engine.ResponseOptions{BinaryFormat: "hex", DataFormat: "arrays", NumberFormat: "number"},
				DefaultRetentionPolicy: "autoPurge", DefaultRetentionUnit: "week", DefaultRetentionPeriod: 4,
				IdleConnectionTimeoutSeconds: 3600, IdleCursorTimeoutSeconds: 600,
			},
			Caps: engine.Caps{MaxSessions: 1024, MaxSessionsPerAddress: 50, MaxSessionsPerUser: 50},
		},
		NetX:                 engine.NetXProperties{SessionDurationMinutes: 30, InactivityTimeoutMinutes: 60},
		Hash:                 enginetest.CheapHash,
		HousekeepingInterval: -1,
		Clock:                clock,
	}
}

const (
	adminPassword = "admin-password-Zq81"
	loopback      = "127.0.0.1"
)

// svc is an rpc.Service on a fresh engine, called the way the protocol layer calls it.
type svc struct {
	t     testing.TB
	s     *rpc.Service
	eng   *engine.Engine
	clock *fakeClock
}

func newSvc(t testing.TB, configure func(*engine.Config)) *svc {
	t.Helper()
	clock := newFakeClock()
	cfg := serviceConfig(clock)
	if configure != nil {
		configure(&cfg)
	}
	eng := newEngine(t, memstore.New(memstore.Options{}), cfg)
	if _, err := eng.Bootstrap(context.Background(), "admin", adminPassword); err != nil {
		t.Fatal(err)
	}
	return &svc{t: t, s: rpc.NewService(eng, schemas.OpenRPC, nil), eng: eng, clock: clock}
}

// newEngine returns an engine on store, closed when the test ends.
func newEngine(t testing.TB, store engine.Store, cfg engine.Config) *engine.Engine {
	t.Helper()
	eng, err := engine.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// reply is what a call produced: the JSON of its result, or its wire error.
type reply struct {
	result json.RawMessage
	err    *jsonrpc2.Error
}

// code is the error code, 0 for success.
func (r reply) code() int64 {
	if r.err == nil {
		return 0
	}
	return r.err.Code
}

// data decodes the error's data member.
func (r reply) data() map[string]any {
	var d map[string]any
	if r.err != nil && r.err.Data != nil {
		_ = json.Unmarshal(*r.err.Data, &d)
	}
	return d
}

func (r reply) String() string {
	if r.err != nil {
		d := ""
		if r.err.Data != nil {
			d = string(*r.err.Data)
		}
		return "error " + jsonString(r.err.Code) + " " + r.err.Message + " " + d
	}
	return "result " + string(r.result)
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// rawCall dispatches one call from addr with raw params and an optional HTTP bearer token. A
// dispatcher error that is not a *jsonrpc2.Error fails the test: the protocol layer would
// have to turn it into -32603.
func (s *svc) rawCall(method string, params json.RawMessage, bearer, addr string) reply {
	s.t.Helper()
	result, err := s.s.Dispatch(context.Background(), &rpc.Call{
		Method: method, Params: params, BearerToken: bearer,
		Client: rpc.ClientInfo{Addr: addr, Transport: rpc.TransportTCP},
	})
	if err != nil {
		var wire *jsonrpc2.Error
		if !errors.As(err, &wire) {
			s.t.Fatalf("%s: Dispatch returned %T %v, not a wire error", method, err, err)
		}
		return reply{err: wire}
	}
	var raw json.RawMessage
	if r, ok := result.(json.RawMessage); ok {
		raw = r
	} else if raw, err = json.Marshal(result); err != nil {
		s.t.Fatalf("%s: result cannot be encoded: %v", method, err)
	}
	return reply{result: raw}
}

// call dispatches params (marshalled; nil means none) from the loopback address.
func (s *svc) call(method string, params any) reply {
	s.t.Helper()
	var raw json.RawMessage
	if params != nil {
		raw, _ = json.Marshal(params)
	}
	return s.rawCall(method, raw, "", loopback)
}

// must fails the test unless the call succeeds and decodes its result into out.
func (s *svc) must(method string, params any, out any) {
	s.t.Helper()
	r := s.call(method, params)
	if r.err != nil {
		s.t.Fatalf("%s %s: %v", method, jsonString(params), r)
	}
	if out != nil {
		if err := json.Unmarshal(r.result, out); err != nil {
			s.t.Fatalf("%s: result %s: %v", method, r.result, err)
		}
	}
}

type sessionObj struct {
	AuthToken                    string  `json:"authToken"`
	SessionID                    string  `json:"sessionId"`
	Username                     string  `json:"username"`
	Description                  string  `json:"description"`
	PermanentSession             bool    `json:"permanentSession"`
	IdleConnectionTimeoutSeconds int64   `json:"idleConnectionTimeoutSeconds"`
	ExpiresAt                    *string `json:"expiresAt"`
}

// login creates a session with createSession and extra params.
func (s *svc) login(user, password string, extra map[string]any) sessionObj {
	s.t.Helper()
	params := map[string]any{"username": user, "password": password}
	for k, v := range extra {
		params[k] = v
	}
	var out sessionObj
	s.must("createSession", params, &out)
	return out
}

// alive reports whether a token's session is live, without touching it.
func (s *svc) alive(token string) bool {
	s.t.Helper()
	p, err := engine.ParseToken(token)
	if err != nil {
		return false
	}
	_, err = s.eng.Store().SessionByTokenHash(context.Background(), p.Hash, s.clock.Now())
	if err != nil && !errors.Is(err, engine.ErrSessionNotFound) {
		s.t.Fatal(err)
	}
	return err == nil
}

// aliveID reports whether the session with that id is live, without touching it.
func (s *svc) aliveID(id string) bool {
	s.t.Helper()
	_, err := s.eng.Store().SessionByID(context.Background(), id, s.clock.Now())
	if err != nil && !errors.Is(err, engine.ErrSessionNotFound) {
		s.t.Fatal(err)
	}
	return err == nil
}

// account returns the stored account, or nil.
func (s *svc) account(name string) *engine.Account {
	s.t.Helper()
	a, err := s.eng.Store().GetAccount(context.Background(), engine.UserKey(name))
	if errors.Is(err, engine.ErrAccountNotFound) {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return a
}

// preference returns a stored preference value, or "<unset>".
func (s *svc) preference(user, label string) string {
	s.t.Helper()
	v, ok, err := s.eng.Store().GetPreference(context.Background(), engine.UserKey(user), label)
	if err != nil {
		s.t.Fatal(err)
	}
	if !ok {
		return "<unset>"
	}
	return v
}
