// Command sessiond is a session and API-key server speaking JSON-RPC 2.0 over TCP, HTTP and
// stdio. Run `sessiond serve` to start it and `sessiond call METHOD [PARAMS]` to try it.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise it comes from the
// module's build information.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}

const usage = `sessiond — sessions and API keys over JSON-RPC 2.0

Usage:
  sessiond serve [flags]                 run the server (TCP 127.0.0.1:7400, HTTP 127.0.0.1:7401)
  sessiond call [flags] METHOD [PARAMS]  call a method on a running server and print the result
  sessiond bench [flags]                 measure a running server (throughput, latency) under load
  sessiond --version                     print the version

Run 'sessiond COMMAND --help' for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdin, stdout, stderr)
	case "call":
		return runCall(args[1:], stdin, stdout, stderr)
	case "bench":
		return runBench(args[1:], stdin, stdout, stderr)
	case "--version", "-v", "version":
		fmt.Fprintln(stdout, "sessiond", versionString())
		return 0
	case "--help", "-h", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sessiond: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
