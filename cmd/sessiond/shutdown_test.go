package main

// TestGracefulShutdownUnderLoad checks SIGTERM under pipelined load on several connections:
// every request the server took is answered with a whole reply line, the process exits 0, and
// the last-use time of a session used just before is on disk after a restart although the
// periodic flush is an hour away.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// shutdownConfigPath flushes last-use times only hourly (and at shutdown), with no
// housekeeping, so what is on disk after a clean stop was written by the shutdown.
const shutdownConfigPath = "../../testdata/config/shutdown.json"

// loadConn pipelines requests 1, 2, 3… as fast as the server takes them and records the
// replies.
type loadConn struct {
	conn     net.Conn
	sent     atomic.Int64 // requests handed to the kernel, the last batch perhaps only in part
	replies  atomic.Int64
	answered []int64
	refused  int      // requests answered shuttingDown: read after the calls in flight, not run
	bad      []string // malformed replies and error replies
	cut      string   // a reply line the connection ended in the middle of
	readErr  error
}

func (lc *loadConn) write(requests func(id int64) string, max int64, stop <-chan struct{}) {
	w := bufio.NewWriterSize(lc.conn, 32<<10)
	for id := int64(1); id <= max; {
		select {
		case <-stop:
			return
		default:
		}
		// A few dozen requests per write, so the server always has a backlog to read.
		first := id
		for ; id <= max && id < first+32; id++ {
			w.WriteString(requests(id))
			w.WriteByte('\n')
		}
		lc.sent.Store(id - 1)
		lc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := w.Flush(); err != nil {
			return // the server has closed the connection
		}
	}
}

func (lc *loadConn) read() {
	r := bufio.NewReaderSize(lc.conn, 64<<10)
	for {
		lc.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := r.ReadBytes('\n')
		if err != nil {
			if len(line) > 0 {
				lc.cut = fmt.Sprintf("a reply cut after %d bytes: %.60q…", len(line), line)
			}
			lc.readErr = err
			return
		}
		var rep rpcReply
		var id int64
		if json.Unmarshal(line, &rep) != nil || json.Unmarshal(rep.ID, &id) != nil {
			lc.bad = append(lc.bad, fmt.Sprintf("malformed reply %.100q", line))
			continue
		}
		switch {
		case rep.Error != nil && rep.Error.Code == -32000 && strings.Contains(string(rep.Error.Data), `"shuttingDown"`):
			lc.refused++
		case rep.Error != nil:
			lc.bad = append(lc.bad, fmt.Sprintf("request %d: %v", id, rep))
		case lc.refused > 0:
			lc.bad = append(lc.bad, fmt.Sprintf("request %d: a result after %d refusals", id, lc.refused))
		}
		lc.answered = append(lc.answered, id)
		lc.replies.Add(1)
	}
}

func TestGracefulShutdownUnderLoad(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--config", shutdownConfigPath, "--data", dir, "--tcp", "127.0.0.1:0", "--http", "off"}
	p := startServer(t, args...)
	c := dialLine(t, p.tcpAddr)
	var admin, idle sessionResult
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &admin)
	c.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "load", "password": "load-pw"}, nil)
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword, "description": "idle"}, &idle)
	// Replies of 60 KB, so that some are still on their way when the server closes.
	var stored bool
	c.mustCall("setUserPreference", []any{admin.AuthToken, map[string]string{"label": "big", "value": strings.Repeat("b", 60000)}}, &stored)

	idleSince := time.Now()

	requests := func(id int64) string {
		var method, params string
		switch id % 8 {
		case 0:
			method, params = "createSession", `{"username":"load","password":"load-pw"}` // a synced write
		case 1, 4:
			method, params = "getUserPreference", fmt.Sprintf(`[%q,"big"]`, admin.AuthToken)
		case 2:
			method, params = "setUserPreference", fmt.Sprintf(`[%q,{"label":"TickleTime","value":"x"}]`, admin.AuthToken)
		default:
			method, params = "pingSession", fmt.Sprintf(`{"authToken":%q}`, admin.AuthToken)
		}
		return fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"params":%s,"id":%d}`, method, params, id)
	}
	const conns, perConn = 4, 50000
	loads := make([]*loadConn, conns)
	stopWriting := make(chan struct{})
	var readers, writers sync.WaitGroup
	for i := range loads {
		nc, err := net.Dial("tcp", p.tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		lc := &loadConn{conn: nc}
		loads[i] = lc
		writers.Go(func() { lc.write(requests, perConn, stopWriting) })
		readers.Go(lc.read)
	}
	// Timestamps have whole seconds: the session sits idle for two while the load gets going,
	// then it is used.
	time.Sleep(time.Until(idleSince.Add(2100 * time.Millisecond)))
	usedAt := time.Now().UTC().Truncate(time.Second)
	c.mustCall("pingSession", map[string]any{"authToken": idle.AuthToken}, nil)

	// SIGTERM once every connection is well under way.
	deadline := time.Now().Add(30 * time.Second)
	for slices.ContainsFunc(loads, func(lc *loadConn) bool { return lc.replies.Load() < 100 }) {
		if time.Now().After(deadline) {
			t.Fatal("the load did not get going")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code := p.terminate()
	close(stopWriting)
	writers.Wait()
	readers.Wait()
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; logs:\n%s", code, p.logs.String())
	}

	total := 0
	var lost []string
	for i, lc := range loads {
		slices.Sort(lc.answered)
		n := int64(len(lc.answered))
		total += len(lc.answered)
		for _, b := range lc.bad[:min(len(lc.bad), 5)] {
			t.Errorf("connection %d: %s", i, b)
		}
		if n > lc.sent.Load() {
			t.Errorf("connection %d: %d replies for %d requests sent", i, n, lc.sent.Load())
		}
		// The server reads a connection in order and answers every request it takes, then
		// refuses those it reads after them (at most 64, maxInFlightPerConnection), so the
		// answered ids are 1…n without a gap or a repeat, and no reply is cut short.
		if lc.refused > 64 {
			t.Errorf("connection %d: %d requests refused, want at most 64", i, lc.refused)
		}
		for j, id := range lc.answered {
			if id != int64(j+1) {
				lost = append(lost, fmt.Sprintf("connection %d: %d replies, but request %d has none", i, n, j+1))
				break
			}
		}
		if lc.cut != "" {
			lost = append(lost, fmt.Sprintf("connection %d: %s (then %v)", i, lc.cut, lc.readErr))
		}
		t.Logf("connection %d: %d requests sent, %d answered (%d of them refused), connection ended with %v", i, lc.sent.Load(), n, lc.refused, lc.readErr)
	}
	if !strings.Contains(p.logs.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the logs:\n%s", p.logs.String())
	}
	for _, l := range lost {
		t.Errorf("a reply was lost at shutdown: %s", l)
	}

	// The last use before SIGTERM was flushed by the shutdown.
	p2, s := sessionAfterRestart(t, args, idle.SessionID, "a clean restart")
	if s.SessionLastAccessedTimestamp.Before(usedAt) || !s.SessionLastAccessedTimestamp.After(s.SessionStartTimestamp) {
		t.Errorf("sessionLastAccessedTimestamp %v after restart, want ≥ %v (the use before SIGTERM; created %v)",
			s.SessionLastAccessedTimestamp, usedAt, s.SessionStartTimestamp)
	}
	t.Logf("%d pipelined requests answered across %d connections; last use %v, after restart %v", total, conns, usedAt, s.SessionLastAccessedTimestamp)
	if code := p2.terminate(); code != 0 {
		t.Errorf("second SIGTERM: exit code %d", code)
	}
}

// closerFunc is an io.Closer of a function.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// closeStore returns the store's Close error, or gives up on a Close that does not return (a
// Badger that retries a write to a failed disk for ever) after its timeout, saying so.
func TestCloseStoreGivesUp(t *testing.T) {
	closed := fmt.Errorf("closed with an error")
	if err := closeStore(closerFunc(func() error { return closed }), time.Hour); err != closed {
		t.Errorf("a Close that returns: %v, want its error", err)
	}
	never := make(chan struct{})
	defer close(never)
	err := closeStore(closerFunc(func() error { <-never; return nil }), 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not close within 10ms") {
		t.Errorf("a Close that never returns: %v, want the timeout", err)
	}
}
