package main

// rpcConn is a newline-delimited JSON-RPC client for the crash, shutdown, secrets and
// hostile-input tests: unlike lineClient it reports a failed call instead of failing the test,
// since after SIGKILL every call fails.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

type rpcConn struct {
	conn net.Conn
	r    *bufio.Reader
	id   atomic.Int64
}

func dialRPC(addr string) (*rpcConn, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &rpcConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}, nil
}

func (c *rpcConn) close() { c.conn.Close() }

// call sends one request and waits up to 10 s for its reply. An error means no reply came:
// the call is not acknowledged.
func (c *rpcConn) call(method string, params any) (rpcReply, error) {
	id := c.id.Add(1)
	req, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": id})
	if err != nil {
		return rpcReply{}, err
	}
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(append(req, '\n')); err != nil {
		return rpcReply{}, err
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return rpcReply{}, err
	}
	var rep rpcReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return rpcReply{}, fmt.Errorf("bad reply %q: %w", line, err)
	}
	if string(rep.ID) != fmt.Sprint(id) {
		return rpcReply{}, fmt.Errorf("reply id %s to request %d", rep.ID, id)
	}
	return rep, nil
}

// batchCall is one request of a batch.
type batchCall struct {
	method string
	params any
}

// batch sends the calls as one JSON-RPC batch and returns their replies in order.
func (c *rpcConn) batch(calls []batchCall) ([]rpcReply, error) {
	base := c.id.Add(int64(len(calls)))
	reqs := make([]map[string]any, len(calls))
	for i, bc := range calls {
		reqs[i] = map[string]any{"jsonrpc": "2.0", "method": bc.method, "params": bc.params, "id": base + int64(i)}
	}
	data, err := json.Marshal(reqs)
	if err != nil {
		return nil, err
	}
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write(append(data, '\n')); err != nil {
		return nil, err
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	var replies []rpcReply
	if err := json.Unmarshal(line, &replies); err != nil {
		return nil, fmt.Errorf("bad batch reply %.200q: %w", line, err)
	}
	byID := map[string]rpcReply{}
	for _, r := range replies {
		byID[string(r.ID)] = r
	}
	out := make([]rpcReply, len(calls))
	for i := range calls {
		r, ok := byID[fmt.Sprint(base+int64(i))]
		if !ok {
			return nil, fmt.Errorf("batch reply lacks request %d", base+int64(i))
		}
		out[i] = r
	}
	return out, nil
}

// errorCode is the reply's error code, 0 for a result.
func (r rpcReply) errorCode() int {
	if r.Error == nil {
		return 0
	}
	return r.Error.Code
}

func (r rpcReply) String() string {
	if r.Error != nil {
		return fmt.Sprintf("error %d %s %s", r.Error.Code, r.Error.Message, r.Error.Data)
	}
	return "result " + string(r.Result)
}
