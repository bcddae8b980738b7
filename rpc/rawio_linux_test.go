package rpc

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return acceptPair(t, ln)
}

// acceptPair dials ln and returns the connection it accepts and the client's end; both are
// closed when the test ends.
func acceptPair(t testing.TB, ln net.Listener) (server, client net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// TestRawIOReadWrite checks that rawIO reads what the peer wrote, in pieces as small as the buffer, and ends with io.EOF when the peer closes.
func TestRawIOReadWrite(t *testing.T) {
	server, client := tcpPair(t)
	r, w, _ := newRawIO(server)
	if _, ok := r.(*rawReader); !ok {
		t.Fatalf("newRawIO gave %T for a TCP connection, want *rawReader", r)
	}
	if _, err := w.Write([]byte("pong\n")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "pong\n" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	if _, err := client.Write([]byte("hello, raw")); err != nil {
		t.Fatal(err)
	}
	client.Close()
	var all []byte
	buf := make([]byte, 3)
	for {
		n, err := r.Read(buf)
		all = append(all, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n == 0 || n > 3 {
			t.Fatalf("Read returned %d bytes into a 3-byte buffer", n)
		}
	}
	if string(all) != "hello, raw" {
		t.Fatalf("read %q", all)
	}
}

// TestRawIODeadlines checks that a read deadline ends a waiting Read with a timeout, and a write deadline ends a Write the peer does not take.
func TestRawIODeadlines(t *testing.T) {
	server, _ := tcpPair(t)
	r, w, _ := newRawIO(server)
	_ = server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(make([]byte, 16))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
	_ = server.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := w.Write(make([]byte, 64<<20)) // far more than the socket buffers hold
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write past the deadline: %v, want a timeout", err)
	}
	if n < 0 || n >= 64<<20 {
		t.Fatalf("Write reported %d bytes written before its deadline", n)
	}
}

// TestRawIOLargeWrite checks that a write larger than the socket buffers waits for the peer to read and arrives whole.
func TestRawIOLargeWrite(t *testing.T) {
	server, client := tcpPair(t)
	_, w, _ := newRawIO(server)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(want))))
		got <- b
	}()
	if n, err := w.Write(want); err != nil || n != len(want) {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, not what was written", len(b))
	}
}

// TestRawIOErrors checks that a read and a write on a connection the peer reset fail, and that I/O after Close reports net.ErrClosed.
func TestRawIOErrors(t *testing.T) {
	server, client := tcpPair(t)
	r, w, _ := newRawIO(server)
	_ = client.(*net.TCPConn).SetLinger(0) // Close sends a reset
	client.Close()
	// The read waits for the reset, however late it is processed.
	_, err := r.Read(make([]byte, 4))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Read on a reset connection: %v, want ECONNRESET", err)
	}
	// net/http tells a failed read by a *net.OpError with Op "read", as net.Conn gives.
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Read on a reset connection: %#v, want a *net.OpError with Op read", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("a write to a reset connection succeeded")
	}
	server.Close()
	if _, err := r.Read(make([]byte, 4)); !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("Read after Close: %v, want net.ErrClosed in a read OpError", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) || !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write after Close: %v, want net.ErrClosed in a write OpError", err)
	}
}

// TestRawIOAllocs checks that a read and a write allocate nothing.
func TestRawIOAllocs(t *testing.T) {
	server, client := tcpPair(t)
	r, w, _ := newRawIO(server)
	msg, buf, peer := []byte("ping\n"), make([]byte, 64), make([]byte, 64)
	n := testing.AllocsPerRun(200, func() {
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, peer[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if n > 0 {
		t.Errorf("a read and a write allocate %.1f times, want 0", n)
	}
}

// TestRawListener checks that rawListen hands out connections that read and write with raw
// calls and that CloseWrite, which net/http uses before closing, half-closes them.
func TestRawListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := rawListen(inner)
	defer ln.Close()
	nc, client := acceptPair(t, ln)
	rc, ok := nc.(*rawNetConn)
	if !ok {
		t.Fatalf("Accept gave %T, want *rawNetConn", nc)
	}
	if _, ok := rc.r.(*rawReader); !ok {
		t.Fatalf("its reader is %T, want *rawReader", rc.r)
	}
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(nc, got); err != nil || string(got) != "ping" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := nc.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if err := nc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(client)
	if err != nil || string(all) != "pong" {
		t.Fatalf("peer read %q, %v; want pong, then the end of input", all, err)
	}
}

// countingConn wraps a TCP connection and counts its reads, as a wrapper that reads in its own
// way (a byte counter, a proxy-header parser) would.
type countingConn struct {
	*net.TCPConn
	reads *int
}

func (c countingConn) Read(p []byte) (int, error) {
	*c.reads++
	return c.TCPConn.Read(p)
}

// taggedConn is a wrapper that cannot be compared with ==.
type taggedConn struct {
	net.Conn
	tags []string
}

// wrappingListener hands out its connections wrapped by wrap.
type wrappingListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l wrappingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(nc), nil
}

// TestRawListenerKeepsWrappers checks that a connection wrapped by the listener given to
// rawListen is served through its own Read (not bypassed with raw calls on its socket), and
// that a wrapper type == cannot compare does not stop Accept.
func TestRawListenerKeepsWrappers(t *testing.T) {
	reads := 0
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{
		{"counting", func(nc net.Conn) net.Conn { return countingConn{nc.(*net.TCPConn), &reads} }},
		{"uncomparable", func(nc net.Conn) net.Conn { return taggedConn{nc, []string{"x"}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := rawListen(wrappingListener{inner, tc.wrap})
			defer ln.Close()
			nc, client := acceptPair(t, ln)
			if _, ok := nc.(*rawNetConn); ok {
				t.Fatalf("Accept wrapped the %s connection in raw calls", tc.name)
			}
			reads = 0
			if _, err := client.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(nc, make([]byte, 4)); err != nil {
				t.Fatal(err)
			}
			if tc.name == "counting" && reads == 0 {
				t.Error("the wrapper's Read was not called")
			}
		})
	}
}

// BenchmarkSocketCalls is a request's round trip on a loopback TCP connection, a 130-byte
// request and a 40-byte reply, written and read on one goroutine with raw system calls:
// read(2) and write(2), against recvfrom(2) and sendto(2) as rawCall makes them. Four calls
// a round trip, two of them a server's for each request.
func BenchmarkSocketCalls(b *testing.B) {
	if raceEnabled {
		b.Skip("race builds make the calls through syscall.Read and Write")
	}
	server, client := tcpPair(b)
	sfd, cfd := blockingDup(b, server), blockingDup(b, client)
	readWrite := func(trap, fd uintptr, p []byte) (int, syscall.Errno) {
		n, _, errno := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		return int(n), errno
	}
	req, reply, buf := bytes.Repeat([]byte("q"), 130), bytes.Repeat([]byte("r"), 40), make([]byte, 4096)
	for _, bc := range []struct {
		name string
		call func(trap, fd uintptr, p []byte) (int, syscall.Errno)
	}{{"read-write", readWrite}, {"recvfrom-sendto", rawCall}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				for _, step := range []struct {
					trap, fd uintptr
					p        []byte
					want     int
				}{{syscall.SYS_WRITE, cfd, req, 130}, {syscall.SYS_READ, sfd, buf, 130}, {syscall.SYS_WRITE, sfd, reply, 40}, {syscall.SYS_READ, cfd, buf, 40}} {
					if n, errno := bc.call(step.trap, step.fd, step.p); n != step.want || errno != 0 {
						b.Fatalf("%d bytes, %v; want %d", n, errno, step.want)
					}
				}
			}
		})
	}
}

// blockingDup returns a blocking duplicate of c's descriptor, closed when the test ends: a
// read waits for the bytes a write on the other end sent, rather than find them not there yet.
func blockingDup(b *testing.B, c net.Conn) uintptr {
	b.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	fd := -1
	_ = rc.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) })
	if err == nil {
		err = syscall.SetNonblock(fd, false) // the duplicate's file is c's: c is not used again
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { syscall.Close(fd) })
	return uintptr(fd)
}
