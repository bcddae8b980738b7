package sessiond_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	sessiond "github.com/sessiond/sessiond/sdk/go"
)

// TestHTTPTransportClose checks that Close makes a call in flight over HTTP fail at once with
// ErrClosed, and later calls without a request, as the TCP transport does.
func TestHTTPTransportClose(t *testing.T) {
	var requests atomic.Int32
	arrived := make(chan struct{}, 1)
	ended := make(chan struct{})
	// Never answers: holds each request until the client gives it up or the test ends. (The
	// server sees a client go only once the body is read.)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		requests.Add(1)
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-ended:
		}
	}))
	defer server.Close()
	defer close(ended)
	client := sessiond.NewHTTPClient(server.URL)

	inFlight := make(chan error, 1)
	go func() { inFlight <- client.Ping(context.Background()) }()
	<-arrived
	client.Close()
	select {
	case err := <-inFlight:
		if !errors.Is(err, sessiond.ErrClosed) {
			t.Errorf("the call in flight at Close: %v; want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left the call in flight waiting")
	}
	if err := client.Ping(context.Background()); !errors.Is(err, sessiond.ErrClosed) {
		t.Errorf("a call after Close: %v; want ErrClosed", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests reached the server; want 1, the one in flight at Close", n)
	}
}
