package sessiond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Transport carries JSON-RPC calls to a sessiond server. [StreamTransport] (TCP, stdio, any
// reader and writer) and [HTTPTransport] implement it; a Transport may also wrap another, for
// example to log every call. Implementations are safe for concurrent use.
type Transport interface {
	// RoundTrip sends one request with method and params (nil for none) and returns the
	// result member of the reply. A reply with an error member is returned as an *Error.
	RoundTrip(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error)
	// Close releases the transport; calls still waiting for a reply fail (a StdioTransport
	// first lets its server answer those it has sent).
	Close() error
}

// ErrClosed is returned by calls on a transport that has been closed.
var ErrClosed = errors.New("sessiond: transport closed")

// Client calls the methods of a sessiond server over a [Transport]. It is safe for concurrent
// use.
type Client struct {
	transport Transport
}

// NewClient returns a client that sends its calls over t.
func NewClient(t Transport) *Client { return &Client{transport: t} }

// Close closes the client's transport.
func (c *Client) Close() error { return c.transport.Close() }

// Call calls method with params, encoded as JSON (nil for none), and decodes the result into
// result, a pointer (nil to ignore it). The generated methods use it; it also reaches a
// method this package does not know yet. An error the server answers with is an *Error.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	var raw json.RawMessage
	if params != nil {
		encoded, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("sessiond: %s: encoding the params: %w", method, err)
		}
		raw = encoded
	}
	reply, err := c.transport.RoundTrip(ctx, method, raw)
	if err != nil {
		if _, ok := errors.AsType[*Error](err); ok {
			return err
		}
		return fmt.Errorf("sessiond: %s: %w", method, err)
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(reply, result); err != nil {
		return fmt.Errorf("sessiond: %s: decoding the result: %w", method, err)
	}
	return nil
}

// byPosition returns values, a method's params in position order as NetX methods take them,
// without the trailing ones that are left out (present[i] false). When one is left out before
// the last one given, or all are (a sessionKey that an HTTP bearer token supplies), it returns
// named, to be sent by name instead.
func byPosition(named any, values []any, present []bool) any {
	n := len(values)
	for n > 0 && !present[n-1] {
		n--
	}
	for _, p := range present[:n] {
		if !p {
			return named
		}
	}
	if n == 0 {
		return named // [] would leave no member for a bearer token to fill
	}
	return values[:n]
}

// request is a JSON-RPC 2.0 request object.
type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      uint64          `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// newRequest encodes a request.
func newRequest(id uint64, method string, params json.RawMessage) ([]byte, error) {
	return json.Marshal(request{JSONRPC: "2.0", ID: id, Method: method, Params: params})
}

// response is a JSON-RPC 2.0 response object.
type response struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`
}

// outcome is the result of a reply, or its error.
func (r *response) outcome() (json.RawMessage, error) {
	switch {
	case r.Error != nil:
		return nil, r.Error
	case r.Result == nil:
		return nil, errors.New("the reply has neither a result nor an error")
	}
	return r.Result, nil
}
