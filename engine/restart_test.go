package engine_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/badgerstore"
)

// TestRestartKeepsEverything checks that closing and reopening the Badger directory keeps
// accounts, sessions, permanent keys, preferences and deletions as they were, and that no
// token or password is on disk in clear.
func TestRestartKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *badgerstore.Store {
		st, err := badgerstore.Open(badgerstore.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	f := newFixtureOn(t, st, nil)
	f.createUser("dora")
	temp := f.login("dora", "dora-pw")
	key, err := f.e.CreateSession(ctx, engine.CreateSessionRequest{Username: "dora", Password: "dora-pw", Permanent: true,
		Options: engine.SessionOptions{Description: ptr("deploy key")}})
	if err != nil {
		t.Fatal(err)
	}
	netx, err := f.e.Authenticate(ctx, "dora", "dora-pw", f.client)
	if err != nil {
		t.Fatal(err)
	}
	gone := f.login("dora", "dora-pw")
	if err := f.e.DeleteSession(ctx, gone.AuthToken); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.e.SetUserPreference(ctx, netx, "lang", "fr"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := f.e.AlterSession(ctx, temp.AuthToken, engine.SessionOptions{Description: ptr("altered")}, nil); err != nil {
		t.Fatal(err)
	}
	f.createUser("ephemeral")
	if _, err := f.e.DropAccounts(ctx, f.admin, []string{"ephemeral"}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Minute)
	if !f.valid(temp.AuthToken) { // a use after creation: its last-use time must survive too
		t.Fatal("session not valid before restart")
	}
	usedAt := f.clock.Now()
	f.e.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// No secret in clear anywhere in the directory.
	secrets := []string{adminPassword, "dora-pw", "ephemeral-pw", f.admin, temp.AuthToken, key.AuthToken, netx, gone.AuthToken}
	for _, tok := range []string{f.admin, temp.AuthToken, key.AuthToken, netx} {
		raw, _ := base64.RawURLEncoding.DecodeString(tok[len(engine.TemporaryTokenPrefix):])
		secrets = append(secrets, string(raw[:32]), hex.EncodeToString(raw[:32]))
	}
	scanDir(t, dir, secrets)

	st2 := open()
	t.Cleanup(func() { st2.Close() })
	e2, err := engine.New(st2, testConfig(f.clock))
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	f2 := &fixture{t: t, e: e2, clock: f.clock, client: f.client}
	for _, tok := range []string{f.admin, temp.AuthToken, key.AuthToken, netx} {
		if !f2.alive(tok) {
			t.Errorf("session %s… lost by the restart", tok[:8])
		}
	}
	if f2.alive(gone.AuthToken) {
		t.Error("a deleted session came back")
	}
	got, err := e2.DescribeSessions(ctx, f.admin, []string{temp.AuthToken, key.AuthToken}, nil)
	if err != nil || len(got) != 2 {
		t.Fatalf("describe after restart: %v %v", got, err)
	}
	for _, s := range got {
		switch s.ID {
		case temp.ID:
			if s.Settings.Description != "altered" || s.LastAccessedAt.Before(usedAt) {
				t.Errorf("temporary session after restart: %+v", s.Session)
			}
		case key.ID:
			if !s.Permanent || s.Settings.Description != "deploy key" {
				t.Errorf("API key after restart: %+v", s.Session)
			}
		}
	}
	if v, ok, err := e2.GetUserPreference(ctx, netx, "lang"); v != "fr" || !ok || err != nil {
		t.Errorf("preference after restart: %q %v %v", v, ok, err)
	}
	if accts, _ := e2.DescribeAccounts(ctx, f.admin, []string{"ephemeral", "dora"}); len(accts) != 1 || accts[0].Username != "dora" {
		t.Errorf("accounts after restart: %+v", accts)
	}
	if _, err := e2.CreateSession(ctx, engine.CreateSessionRequest{Username: "dora", Password: "dora-pw"}); err != nil {
		t.Errorf("password after restart: %v", err)
	}
}

// scanDir fails the test if any file under dir contains any of secrets.
func scanDir(t *testing.T, dir string, secrets []string) {
	t.Helper()
	eachFile(t, dir, func(path string, data []byte) {
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains a secret in clear (%d bytes)", filepath.Base(path), len(s))
			}
		}
	})
}

// eachFile calls fn with the path and contents of every file under dir, in lexical order.
// A file that goes away meanwhile is skipped.
func eachFile(t *testing.T, dir string, fn func(path string, data []byte)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fn(path, data)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// TestTickleWritesNothing checks issue 6's "no synchronous disk write per tickle": tickles
// and pingSession on a Badger store change no file in its directory (the background writer
// is off here; it writes their times in batches), while a preference, which is durable,
// does.
func TestTickleWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := badgerstore.Open(badgerstore.Options{Dir: dir, FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, st, nil)
	f.createUser("tess")
	key, err := f.e.Authenticate(ctx, "tess", "tess-pw", f.client)
	if err != nil {
		t.Fatal(err)
	}
	before := dirDigest(t, dir)
	for range 50 {
		f.clock.Advance(time.Second)
		if ok, err := f.e.SetUserPreference(ctx, key, engine.TickleLabel, "x"); !ok || err != nil {
			t.Fatalf("tickle: %v %v", ok, err)
		}
		if err := f.e.PingSession(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if dirDigest(t, dir) != before {
		t.Error("tickles and pings changed the store's files")
	}
	if ok, err := f.e.SetUserPreference(ctx, key, "lang", "fr"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if dirDigest(t, dir) == before {
		t.Error("a preference left the store's files as they were: the check cannot see a write")
	}
}

// dirDigest hashes the names and contents of the files under dir.
func dirDigest(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	eachFile(t, dir, func(path string, data []byte) {
		fmt.Fprintf(h, "%s %d\n", path, len(data))
		h.Write(data)
	})
	return [32]byte(h.Sum(nil))
}
