package main

// TestThousandsOfConnections checks the real binary with maxConnections 64 against 2000 TCP
// connections opened at once: exactly 64 are served, every other one gets one clear -32000
// tooManyConnections line and is closed, the process lets go of their descriptors,
// HTTP clients are served throughout, and a fresh TCP client is served once slots free up.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// connectionsConfigPath sets server.maxConnections to 64.
const connectionsConfigPath = "../../testdata/config/connections.json"

func TestThousandsOfConnections(t *testing.T) {
	const total, limit = 2000, 64
	p := startServer(t, "--config", connectionsConfigPath, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0")
	httpURL := "http://" + p.httpAddr + "/"
	ping := `{"jsonrpc":"2.0","method":"pingSession","params":{},"id":1}`

	// Open them all at once, and keep them open.
	conns := make([]net.Conn, total)
	var wg sync.WaitGroup
	dialErrs := make(chan error, total)
	for i := range conns {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", p.tcpAddr, 10*time.Second)
			if err != nil {
				dialErrs <- err
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	close(dialErrs)
	for err := range dialErrs {
		t.Fatalf("dial: %v", err)
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()

	// Each sends a ping: a served connection answers it, a refused one has its error line.
	served := make([]bool, total)
	var mu sync.Mutex
	outcomes := map[string]int{}
	for i, c := range conns {
		wg.Go(func() {
			c.SetDeadline(time.Now().Add(30 * time.Second))
			c.Write([]byte(ping + "\n"))
			line, err := bufio.NewReader(c).ReadString('\n')
			var rep rpcReply
			outcome := ""
			switch {
			case err != nil:
				outcome = fmt.Sprintf("no reply: %v", err)
			case json.Unmarshal([]byte(line), &rep) != nil:
				outcome = fmt.Sprintf("bad reply %q", line)
			case rep.Error == nil && string(rep.Result) == "{}":
				outcome = "served"
				served[i] = true
			default:
				outcome = strings.TrimSpace(line)
			}
			mu.Lock()
			outcomes[outcome]++
			mu.Unlock()
		})
	}
	wg.Wait()
	refusal := fmt.Sprintf(`{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server unavailable","data":{"reason":"tooManyConnections","limit":%d}},"id":null}`, limit)
	if outcomes["served"] != limit || outcomes[refusal] != total-limit || len(outcomes) != 2 {
		t.Errorf("outcomes %v, want %d served and %d refused with %s", outcomes, limit, total-limit, refusal)
	}

	// Refused connections are closed by the server after their error line.
	for i, c := range conns {
		if served[i] {
			continue
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("refused connection %d still open: %d bytes, %v", i, n, err)
		}
	}

	// HTTP is served all along, and the process keeps few descriptors.
	if reply := postJSON(t, httpURL, ping, ""); reply != `{"jsonrpc":"2.0","result":{},"id":1}` {
		t.Errorf("HTTP while TCP is full: %s", reply)
	}
	// A refused connection is drained for at most a second (so the client can read its
	// error) and then closed, even though these clients keep their end open. A served one
	// holds one descriptor, or two once the event loop has served it (on one processor,
	// rpc/loop_linux.go).
	fdDir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		fds, err := os.ReadDir(fdDir)
		if err != nil || len(fds) <= 2*limit+64 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("the server still holds %d descriptors with %d connections served", len(fds), limit)
			break
		}
	}

	// A fresh TCP client is refused while all slots are taken, and served once they free.
	if reply := freshCall(t, p.tcpAddr, ping); reply != refusal {
		t.Errorf("fresh client while full: %s", reply)
	}
	for i, c := range conns {
		if served[i] {
			c.Close()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		reply := freshCall(t, p.tcpAddr, ping)
		if reply == `{"jsonrpc":"2.0","result":{},"id":1}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fresh client after the served connections closed: %s", reply)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := p.terminate(); code != 0 {
		t.Errorf("SIGTERM: exit code %d", code)
	}
}

// freshCall sends one request on a new connection and returns the reply line.
func freshCall(t *testing.T, addr, request string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(request + "\n")); err != nil {
		return err.Error()
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(line)
}
