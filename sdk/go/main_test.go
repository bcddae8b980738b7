package sessiond_test

import (
	"context"
	"os"
	"testing"
	"time"

	sessiond "github.com/sessiond/sessiond/sdk/go"
	"github.com/sessiond/sessiond/sdk/sdktest"
)

func TestMain(m *testing.M) { os.Exit(sdktest.Main(m)) }

// startDialed starts a server and dials it over TCP. The client is closed, and ctx (30 s)
// cancelled, when the test ends.
func startDialed(t *testing.T) (*sdktest.Server, *sessiond.Client, context.Context) {
	t.Helper()
	server := sdktest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	client, err := sessiond.Dial(ctx, server.TCPAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return server, client, ctx
}
