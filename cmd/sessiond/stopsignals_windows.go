package main

import (
	"os"
	"os/signal"
)

// ignoreStopSignals makes the password hash helper survive a console's Ctrl-C. On Windows
// an ignored interrupt still ends the process (the console's default handler runs); one
// delivered to a channel of the program's does not, so it is caught and dropped.
func ignoreStopSignals() {
	signal.Notify(make(chan os.Signal, 1), os.Interrupt)
}
