// Package redistest runs throwaway redis-server processes for tests: on 127.0.0.1 with a
// free port and a temporary directory, keeping an append-only file synced on every write
// (appendfsync always), as sessiond's durability promise needs. Tests that call Start are
// skipped when redis-server is not installed (Debian: apt-get install redis-server).
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/syncbuf"
)

// Server is one redis-server process.
type Server struct {
	t testing.TB
	// Addr is host:port.
	Addr string
	// Dir holds the append-only file; it survives Kill and Restart.
	Dir  string
	args []string
	bus  string // the cluster bus's port, in cluster mode

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *syncbuf.Buffer
}

// Start runs redis-server with extra (more redis-server options, e.g. "--maxclients", "100")
// and waits until it answers PING. The server is killed when the test ends. It skips the
// test when redis-server is not installed. A port taken between the choice and the server's
// bind (by another test's connection, say) is chosen again.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server); skipping the Redis tests")
	}
	s := &Server{t: t, Dir: t.TempDir()}
	t.Cleanup(s.Kill)
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Addr = "127.0.0.1:" + strconv.Itoa(port)
		s.args = append([]string{bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", s.Dir,
			"--save", "", "--appendonly", "yes", "--appendfsync", "always",
			"--daemonize", "no", "--logfile", "", "--loglevel", "warning",
		}, extra...)
		if slices.Contains(extra, "--cluster-enabled") {
			// The cluster bus's port is the client port + 10000 unless told, and that one
			// may be some connection's.
			bus, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			s.bus = strconv.Itoa(bus)
			s.args = append(s.args, "--cluster-port", s.bus)
		}
		err = s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			t.Fatal(err)
		}
	}
}

// errPortTaken: redis-server could not bind a port it was given.
var errPortTaken = errors.New("a port was taken")

// URL returns redis://ADDR/db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr, db) }

// Kill stops the server with SIGKILL, as a crash would, and waits for it to exit. Writes it
// acknowledged are in its append-only file.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same port and directory, after Kill, and waits
// until it has loaded its append-only file and answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

// Logs returns what the server has logged.
func (s *Server) Logs() string {
	s.mu.Lock()
	logs := s.logs
	s.mu.Unlock()
	return logs.String()
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatal(err)
	}
}

// launch starts the server and waits until it answers PING.
func (s *Server) launch() error {
	cmd := exec.Command(s.args[0], s.args[1:]...)
	logs := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited, s.logs = cmd, exited, logs
	s.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			err := fmt.Errorf("redis-server exited at start; its log:\n%s", logs.String())
			if strings.Contains(logs.String(), "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return err
		default:
		}
		if ping(s.Addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s does not answer after 15 s; its log:\n%s", s.Addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends PING and expects PONG (not, for instance, LOADING).
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// freePort is a port no one listens on now (a variable for tests).
var freePort = func() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// StartCluster starts n (at least 3) redis-server processes in cluster mode, gives each an
// equal share of the 16384 slots, joins them and waits until every node reports the cluster
// ok. ClusterURL returns a store URL for them.
func StartCluster(t testing.TB, n int, extra ...string) []*Server {
	t.Helper()
	servers := make([]*Server, n)
	for i := range servers {
		servers[i] = Start(t, append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000"}, extra...)...)
	}
	const slots = 16384
	for i, s := range servers {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := command(s.Addr, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", s.Addr, err)
		}
	}
	for _, s := range servers[1:] {
		host, port, _ := net.SplitHostPort(s.Addr)
		if err := command(servers[0].Addr, "CLUSTER", "MEET", host, port, s.bus); err != nil {
			t.Fatalf("CLUSTER MEET: %v", err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range servers {
		for {
			info, err := reply(s.Addr, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cluster is not ok after 20 s: %q, %v", info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return servers
}

// ClusterURL returns a redis+cluster:// URL naming every node of a cluster as a seed.
func ClusterURL(servers []*Server) string {
	u := "redis+cluster://" + servers[0].Addr
	for i, s := range servers[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + s.Addr
	}
	return u
}

// StartSentinel starts a Redis Sentinel (redis-server --sentinel) that monitors master under
// the name masterName, and waits until it knows the master.
func StartSentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server); skipping the Redis tests")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Addr: "127.0.0.1:" + strconv.Itoa(port), Dir: t.TempDir()}
	host, masterPort, _ := net.SplitHostPort(master.Addr)
	conf := filepath.Join(s.Dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n", port, s.Dir, masterName, host, masterPort)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s.args = []string{bin, conf, "--sentinel", "--loglevel", "warning"}
	t.Cleanup(s.Kill)
	s.start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		addr, err := reply(s.Addr, "SENTINEL", "get-master-addr-by-name", masterName)
		if err == nil && strings.Contains(addr, masterPort) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel does not know %s after 10 s: %q, %v", masterName, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// command sends one command and fails unless Redis answers +OK.
func command(addr string, args ...string) error {
	got, err := reply(addr, args...)
	if err != nil {
		return err
	}
	if got != "OK" {
		return fmt.Errorf("%s answered %q", args[0], got)
	}
	return nil
}

// reply sends one command in RESP and returns a simple, bulk or array-of-bulk reply as text
// (array elements joined by newlines); an error reply is an error.
func reply(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(req.String())); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	var read func() (string, error)
	read = func() (string, error) {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSuffix(line, "\r\n")
		switch line[0] {
		case '+', ':':
			return line[1:], nil
		case '-':
			return "", errors.New(line[1:])
		case '$':
			n, _ := strconv.Atoi(line[1:])
			if n < 0 {
				return "", nil
			}
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return "", err
			}
			return string(buf[:n]), nil
		case '*':
			n, _ := strconv.Atoi(line[1:])
			parts := make([]string, 0, max(n, 0))
			for range n {
				p, err := read()
				if err != nil {
					return "", err
				}
				parts = append(parts, p)
			}
			return strings.Join(parts, "\n"), nil
		}
		return "", fmt.Errorf("unexpected reply %q", line)
	}
	return read()
}
