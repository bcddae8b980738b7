//go:build !windows

package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// ownProcessGroup starts the password hash helper in a process group of its own, so that the
// signals a terminal's Ctrl-C or a supervisor sends to the server's process group do not
// reach it, not even in the moment after each start when it cannot ignore them yet
// (ignoreStopSignals). It still ends with the server: it reads its input until the server
// closes it or dies.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// ignoreStopSignals makes the password hash helper ignore SIGINT and SIGTERM, which a
// supervisor may send to every process of the server's cgroup (its own process group keeps
// away those sent to the server's group: ownProcessGroup). The helper
// executes itself again (lowerPriority), and the new program calls this again: Go's runtime
// keeps an inherited SIGINT ignored, but installs its own handler for SIGTERM at start, so
// until the call a SIGTERM would end the new helper (a few milliseconds after each start).
//
// It ignores SIGTTOU too: in a process group of its own, the helper is a background job of
// the server's terminal, and with `stty tostop` set a write to it (a warning on stderr)
// would stop the helper, and the logins waiting for its hashes with it.
func ignoreStopSignals() {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGTTOU)
}
