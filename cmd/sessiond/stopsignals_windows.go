package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// ownProcessGroup starts the password hash helper in a process group of its own, where a
// console's Ctrl-C is not delivered.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// ignoreStopSignals makes the password hash helper survive a console's Ctrl-C. On Windows
// an ignored interrupt still ends the process (the console's default handler runs); one
// delivered to a channel of the program's does not, so it is caught and dropped.
func ignoreStopSignals() {
	signal.Notify(make(chan os.Signal, 1), os.Interrupt)
}
