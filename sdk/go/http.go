package sessiond

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// maxHTTPReply bounds the body of a reply read over HTTP.
const maxHTTPReply = 64 << 20

// HTTPTransport carries each call in an HTTP POST request of its own, as sessiond serves HTTP
// (by default on http://127.0.0.1:7401/). It is safe for concurrent use; use it by pointer.
type HTTPTransport struct {
	// URL is the server's endpoint, e.g. "http://127.0.0.1:7401/".
	URL string
	// BearerToken, when set, is sent as "Authorization: Bearer <token>". The server then
	// takes the caller's token from it whenever the params leave the token member empty, so
	// one API key can serve every call.
	BearerToken string
	// HTTPClient sends the requests; nil means http.DefaultClient, which goes through the
	// proxy of HTTP_PROXY, HTTPS_PROXY and NO_PROXY (http.ProxyFromEnvironment, which never
	// proxies requests to localhost or loopback addresses).
	HTTPClient *http.Client

	ids atomic.Uint64

	closeOnce     sync.Once
	closing       context.Context // done once Close is called; see closed
	cancelClosing context.CancelFunc
}

// NewHTTPClient returns a client that calls the sessiond server at url over HTTP.
func NewHTTPClient(url string) *Client { return NewClient(&HTTPTransport{URL: url}) }

// RoundTrip posts one request and reads its reply. Replies with a JSON-RPC error come back as
// *Error whatever their HTTP status (sessiond answers 413 or 503, for example, with one).
// After Close it fails with ErrClosed, and Close makes a call in flight fail with it at once.
func (t *HTTPTransport) RoundTrip(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	closing := t.closed()
	if closing.Err() != nil {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(closing, func() { cancel(ErrClosed) })
	defer stop()
	result, err := t.post(ctx, method, params)
	if _, answered := errors.AsType[*Error](err); err != nil && !answered && errors.Is(context.Cause(ctx), ErrClosed) {
		return nil, ErrClosed
	}
	return result, err
}

// post posts one request and reads its reply.
func (t *HTTPTransport) post(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	body, err := newRequest(t.ids.Add(1), method, params)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if t.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+t.BearerToken)
	}
	client := t.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPReply))
	if err != nil {
		return nil, err
	}
	var r response
	if err := json.Unmarshal(data, &r); err != nil || (r.Error == nil && r.Result == nil) {
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %s", resp.Status)
		}
		return nil, fmt.Errorf("the HTTP reply is not a JSON-RPC response: %.200q", data)
	}
	return r.outcome()
}

// closed returns the context that Close cancels.
func (t *HTTPTransport) closed() context.Context {
	t.closeOnce.Do(func() { t.closing, t.cancelClosing = context.WithCancel(context.Background()) })
	return t.closing
}

// Close makes the calls in flight fail with ErrClosed, and later calls too, as the TCP
// transport does. It closes the idle connections of HTTPClient, unless that is nil
// (http.DefaultClient is shared with the rest of the program).
func (t *HTTPTransport) Close() error {
	t.closed()
	t.cancelClosing()
	if t.HTTPClient != nil {
		t.HTTPClient.CloseIdleConnections()
	}
	return nil
}
