package redistest

import (
	"net"
	"slices"
	"strconv"
	"testing"
)

// Start chooses its ports again when one is taken before redis-server binds it: the client
// port, or a cluster node's bus port.
func TestStartChoosesAgainWhenAPortIsTaken(t *testing.T) {
	for _, tc := range []struct {
		name      string
		extra     []string
		takeAt    int // the freePort call whose port is taken
		wantCalls int // two choices for each attempt in cluster mode
	}{
		{"client port", nil, 1, 2},
		{"cluster bus port", []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}, 2, 4},
	} {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		takenPort := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
		real, calls := freePort, 0
		freePort = func() (int, error) {
			if calls++; calls == tc.takeAt {
				return strconv.Atoi(takenPort)
			}
			return real()
		}
		s := Start(t, tc.extra...)
		freePort = real
		taken.Close()
		if calls != tc.wantCalls || slices.Contains(s.args, takenPort) {
			t.Errorf("%s: %d ports chosen, args %q; want %d, without the taken %s", tc.name, calls, s.args, tc.wantCalls, takenPort)
		}
		if err := ping(s.Addr); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
