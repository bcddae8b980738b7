package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/engine/badgerstore"
	"github.com/sessiond/sessiond/engine/memstore"
	"github.com/sessiond/sessiond/engine/redisstore"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/schemas"
)

const serveUsage = `Usage: sessiond serve [flags]

Runs the server. With no flags: a Badger store in ./sessiond-data, JSON-RPC over TCP on
127.0.0.1:7400 (one JSON value per line) and over HTTP on 127.0.0.1:7401 (POST /).
With --stdio it serves stdin/stdout and opens no network listener unless --tcp or --http
is given too. SIGINT or SIGTERM drains in-flight calls, flushes and exits 0.

On a new store it creates the account "admin" with the password in SESSIOND_ADMIN_PASSWORD,
or prints a generated one once on stderr.

Several nodes share sessions, API keys and accounts through Redis with --store URL (or
SESSIOND_STORE=URL without a store flag, which keeps a password in it out of the process
list):
  redis://[user:password@]host:port/db          one Redis server (rediss:// for TLS)
  redis+sentinel://host:port/db?master_name=M   a primary found through Sentinel
  redis+cluster://host:port?addr=host2:port     Redis Cluster (all keys in one hash slot)
Keys start with storage.redisKeyPrefix. Redis must run with appendonly yes and appendfsync
always for an acknowledged change to survive a Redis crash; a warning says when it does not.

Flags:
`

// serveOptions are the flags of `sessiond serve`.
type serveOptions struct {
	dataDir      string
	inMemory     bool
	storeURL     string
	configPath   string
	tcpAddr      string
	httpAddr     string
	stdio        bool
	framing      string
	logLevel     string
	logFormat    string
	drainTimeout time.Duration
	pprofAddr    string
	hashProcess  bool
	hashWorker   bool
	memoryLimit  string
	cpus         string
}

func runServe(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o serveOptions
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stdout, serveUsage, fs.FlagUsages()) } // --help, as call and bench print theirs
	fs.StringVar(&o.dataDir, "data", "./sessiond-data", "directory of the embedded Badger store")
	fs.BoolVar(&o.inMemory, "in-memory", false, "keep everything in memory (lost at exit; for tests and trials)")
	fs.StringVar(&o.storeURL, "store", "", "shared Redis store for several nodes: redis://host:port/db, rediss://…, redis+sentinel://…?master_name=M or redis+cluster://… (instead of --data)")
	fs.StringVar(&o.configPath, "config", "", "services.json to read at start")
	fs.StringVar(&o.tcpAddr, "tcp", "", "TCP listen address (default from config, 127.0.0.1:7400; \"off\" disables)")
	fs.StringVar(&o.httpAddr, "http", "", "HTTP listen address (default from config, 127.0.0.1:7401; \"off\" disables)")
	fs.BoolVar(&o.stdio, "stdio", false, "serve JSON-RPC on stdin/stdout (logs stay on stderr)")
	fs.StringVar(&o.framing, "stdio-framing", "newline", "stdio framing: newline or content-length")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format on stderr: text or json")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 10*time.Second, "how long shutdown waits for in-flight calls")
	fs.StringVar(&o.pprofAddr, "pprof", "", "serve Go profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; keep it on loopback")
	fs.BoolVar(&o.hashProcess, "hash-process", true, "compute password hashes in a helper process of lower CPU priority, so logins cannot starve token checks")
	fs.BoolVar(&o.hashWorker, "hash-worker", false, "run as that helper (started by serve itself)")
	fs.StringVar(&o.memoryLimit, "memory-limit", "", "soft limit of the Go heap and runtime, e.g. 400MiB: past it the garbage collector works harder to stay under (default $GOMEMLIMIT, or none; \"off\" for none)")
	fs.StringVar(&o.cpus, "cpus", "", "run the server's threads on these CPUs only (Linux), e.g. 1 or 2-3, away from its clients' (default: all); the password hash helpers keep the CPUs serve started with")
	_ = fs.MarkHidden("hash-worker")
	if err := fs.Parse(args); err != nil {
		return flagError(stderr, "serve", err)
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "serve", fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if o.hashWorker {
		// A terminal's Ctrl-C and a supervisor's SIGTERM reach the server's whole process
		// group (or cgroup), the helper too. The server stops the helper itself, by closing
		// its stdin once the logins it drains have their hashes; killed by the signal, the
		// helper would leave those to the server's own process, with a warning that it
		// stopped. (Here, not in runHashWorker, which tests call in their own process.)
		ignoreStopSignals()
		return runHashWorker(stdin, stdout, stderr)
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return usageError(stderr, "serve", err.Error())
	}
	if err := serve(o, fs, stdin, stdout, stderr, log); err != nil {
		var usage badUsage
		if errors.As(err, &usage) {
			return usageError(stderr, "serve", err.Error())
		}
		fmt.Fprintln(stderr, "sessiond serve:", err)
		return 1
	}
	return 0
}

// badUsage is a mistake in the command line itself, such as a flag's value it cannot take:
// runServe reports it as pflag's own refusals are (usageError, exit 2), where other failures
// to serve exit 1.
type badUsage struct{ error }

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

func serve(o serveOptions, fs *pflag.FlagSet, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) (retErr error) {
	cfg := DefaultConfig()
	if o.configPath != "" {
		var err error
		if cfg, err = LoadConfig(o.configPath); err != nil {
			return err
		}
	}
	if fs.Changed("tcp") {
		cfg.Server.TCPAddr = o.tcpAddr
	} else if o.stdio {
		cfg.Server.TCPAddr = ""
	}
	if fs.Changed("http") {
		cfg.Server.HTTPAddr = o.httpAddr
	} else if o.stdio {
		cfg.Server.HTTPAddr = ""
	}
	for _, a := range []*string{&cfg.Server.TCPAddr, &cfg.Server.HTTPAddr} {
		if *a == "off" {
			*a = ""
		}
	}
	var framing rpc.Framing
	switch o.framing {
	case "newline":
		framing = rpc.FramingNewline
	case "content-length":
		framing = rpc.FramingContentLength
	default:
		return badUsage{fmt.Errorf("--stdio-framing: %q is not newline or content-length", o.framing)}
	}
	if o.drainTimeout <= 0 {
		return badUsage{fmt.Errorf("--drain-timeout: %v is not positive: shutdown would drop every call in flight", o.drainTimeout)}
	}
	if !fs.Changed("store") && !o.inMemory && !fs.Changed("data") {
		o.storeURL = os.Getenv("SESSIOND_STORE") // keeps a Redis password off the command line
	}
	if chosen := btoi(o.storeURL != "") + btoi(o.inMemory) + btoi(fs.Changed("data")); chosen > 1 {
		return badUsage{errors.New("give one of --data, --in-memory and --store: each is a store of its own")}
	}
	if cfg.Engine.NetX.Persistence && o.storeURL == "" {
		return errors.New("sessionKeyProperties.user.sessionPersistence is true, which shares session keys between nodes: it needs a shared store (--store redis://…), not the embedded one")
	}

	// Signals are caught from here on: one that arrives while the store loads stops the
	// server once it is up, and the store is closed as after any stop. A client of --stdio
	// that stops reading makes writes fail (EPIPE) instead of killing the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	signal.Ignore(syscall.SIGPIPE)

	memLimit, err := applyMemoryLimit(o.memoryLimit)
	if err != nil {
		return badUsage{err}
	}
	// The hash helpers run one hash per CPU they have: all the server's, or with --cpus those
	// it started with.
	hashCPUs := runtime.GOMAXPROCS(0)
	if o.cpus != "" {
		helperCPUs, err := pinToCPUs(o.cpus, log)
		if err != nil {
			return err
		}
		hashCPUs = helperCPUs
	}
	if memLimit > 0 {
		log.Info("memory limit", "bytes", memLimit)
	}
	if !o.stdio && cfg.Server.TCPAddr == "" && cfg.Server.HTTPAddr == "" {
		return badUsage{errors.New("nothing to serve: give --stdio, --tcp or --http")}
	}

	// The helper starts first: it executes itself twice and sets up its runtime while the
	// store loads, at a lower priority than the load.
	if o.hashProcess {
		if derive, stop, err := startPasswordHashing(log); err != nil {
			log.Warn("hashing passwords in the server process", "err", err)
		} else {
			defer stop()
			cfg.Engine.DeriveKey = derive
			if cfg.Engine.MaxConcurrentHashes == 0 {
				// The helper computes one hash per CPU at a time; one more each waiting in it
				// means it never idles while a request crosses over to it.
				cfg.Engine.MaxConcurrentHashes = 2 * hashCPUs
			}
		}
	}
	store, where, err := openStore(o, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeStore(store, storeCloseTimeout); err != nil {
			log.Error("closing the store", "err", err)
			if retErr == nil {
				retErr = err
			}
			return
		}
		log.Info("stopped")
	}()

	cfg.Engine.Logger = log
	cfg.Engine.Host = hostInfo(where)
	eng, err := engine.New(store, cfg.Engine)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	defer eng.Close()

	// The listeners are bound before the admin account is created: when one cannot be, the
	// server stops with a store as it found it, and a generated password is not shown for an
	// account nobody could then reach.
	var tcpLn, httpLn net.Listener
	defer func() {
		for _, ln := range []net.Listener{tcpLn, httpLn} {
			if ln != nil {
				_ = ln.Close() // the Serve methods close theirs too; a second close is harmless
			}
		}
	}()
	if cfg.Server.TCPAddr != "" {
		if tcpLn, err = net.Listen("tcp", cfg.Server.TCPAddr); err != nil {
			return fmt.Errorf("tcp listener: %w", err)
		}
	}
	if cfg.Server.HTTPAddr != "" {
		if httpLn, err = net.Listen("tcp", cfg.Server.HTTPAddr); err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
	}
	if o.pprofAddr != "" {
		stopProfiles, err := servePprof(o.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stopProfiles()
	}
	if err := bootstrapAdmin(eng, stderr, log); err != nil {
		return err
	}

	srv := rpc.NewServer(rpc.NewService(eng, schemas.OpenRPC, log), rpcOptions(cfg.Server, log))
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	if tcpLn != nil {
		log.Info("listening", "transport", "tcp", "addr", tcpLn.Addr().String())
		wg.Add(1)
		go func() { defer wg.Done(); errs <- srv.ServeTCP(tcpLn) }()
	}
	if httpLn != nil {
		log.Info("listening", "transport", "http", "addr", httpLn.Addr().String())
		wg.Add(1)
		go func() { defer wg.Done(); errs <- srv.ServeHTTPListener(httpLn) }()
	}
	stdioDone := make(chan struct{})
	if o.stdio {
		log.Info("serving stdio", "framing", o.framing)
		go func() {
			defer close(stdioDone)
			in, release, err := pollableInput(stdin)
			if err != nil {
				log.Debug("stdio: reading stdin as inherited, which takes no read deadline: after a signal, only the read waiting in it is refused", "why", err)
			}
			defer release()
			// Not ctx: a signal drains stdio's calls through Shutdown, as it does TCP's,
			// instead of cancelling them.
			if err := srv.ServeStdio(context.Background(), in, stdout, framing); err != nil && ctx.Err() == nil && !errors.Is(err, rpc.ErrServerClosed) {
				errs <- fmt.Errorf("stdio: %w", err)
			}
		}()
	}
	log.Info("sessiond ready", "version", versionString(), "store", where)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", "signal")
	case <-stdioDone:
		log.Info("shutting down", "reason", "end of stdin")
	case err := <-errs:
		if err != nil && !errors.Is(err, rpc.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			runErr = err
		}
	}
	drain, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("shutdown", "err", err)
	}
	wg.Wait()
	// The store's Close (deferred above, bounded by storeCloseTimeout) writes out the last-use
	// times, as the stores' Close does; not here with drain, which may have run out.
	return runErr
}

// storeCloseTimeout bounds how long a stopping server waits for its store to write out
// last-use times and to close. Badger's Close retries writing its memtable out for as long as
// the disk refuses it (a disk that failed, a filesystem remounted read-only), which would
// keep a stopped server from ever exiting; what was acknowledged is in the store's synced
// log by then, and the next start reads it from there.
const storeCloseTimeout = 30 * time.Second

// closeStore closes c, or gives up on it after timeout with an error that says so.
func closeStore(c io.Closer, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return fmt.Errorf("the store did not close within %v (a disk that fails, or a filesystem remounted read-only?): exiting without it; the next start recovers every acknowledged change from the store's log", timeout)
	}
}

// openStore opens the store the flags choose and says what it is, for logs.
func openStore(o serveOptions, cfg *Config, log *slog.Logger) (engine.Store, string, error) {
	switch {
	case o.storeURL != "":
		if cfg.Storage.EncryptionKeyFile != "" || os.Getenv("SESSIOND_ENCRYPTION_KEY") != "" {
			log.Warn("the encryption key (storage.encryptionKeyFile, SESSIOND_ENCRYPTION_KEY) encrypts the Badger store only; it is not used with --store, where Redis keeps the data as sessiond writes it (token and password hashes, never tokens or passwords)")
		}
		redisstore.RouteClientLogs(log)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := redisstore.Open(ctx, redisstore.Options{
			URL:           o.storeURL,
			KeyPrefix:     cfg.Storage.RedisKeyPrefix,
			Logger:        log,
			FlushInterval: cfg.Storage.FlushInterval,
		})
		if err != nil {
			return nil, "", fmt.Errorf("opening the store %s: %w", redisstore.RedactURL(o.storeURL), err)
		}
		return st, fmt.Sprintf("%s (%s, keys %q)", redisstore.RedactURL(o.storeURL), st.Topology(), st.KeyPrefix()), nil
	case o.inMemory:
		return memstore.New(memstore.Options{}), "memory", nil
	}
	key, err := encryptionKey(cfg.Storage.EncryptionKeyFile)
	if err != nil {
		return nil, "", err
	}
	if key != nil {
		warnOpenKeyFile(cfg.Storage.EncryptionKeyFile, log)
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return nil, "", err
	}
	st, err := badgerstore.Open(badgerstore.Options{Dir: dir, EncryptionKey: key, Logger: log, FlushInterval: cfg.Storage.FlushInterval})
	if err != nil {
		return nil, "", fmt.Errorf("opening the store in %s: %w", dir, err)
	}
	return st, dir, nil
}

// encryptionKey reads the key for encryption at rest from SESSIOND_ENCRYPTION_KEY (base64) or
// from the configured file (raw 16, 24 or 32 bytes, or base64 of them).
func encryptionKey(file string) ([]byte, error) {
	text, source := os.Getenv("SESSIOND_ENCRYPTION_KEY"), "SESSIOND_ENCRYPTION_KEY"
	if keyFromFile(file) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("storage.encryptionKeyFile: %w", err)
		}
		// A file of 16, 24 or 32 bytes is a raw key, except 24 characters that are the base64
		// of a 16-byte key (ending in "=="), which must give the same key as in
		// SESSIOND_ENCRYPTION_KEY with or without a final newline. (A raw key of 32 hex
		// digits or letters is valid base64 too, and stays raw; so does a raw 24-byte key
		// that only happens to end in "==".)
		if n := len(b); badgerstore.ValidKeyLength(n) {
			if k, err := base64.StdEncoding.DecodeString(string(b)); n == 24 && err == nil && len(k) == 16 {
				return k, nil
			}
			return b, nil
		}
		text, source = strings.TrimSpace(string(b)), file
	}
	if text == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil || !badgerstore.ValidKeyLength(len(key)) {
		return nil, fmt.Errorf("%s: the encryption key must be 16, 24 or 32 bytes (raw, or base64-encoded)", source)
	}
	return key, nil
}

// keyFromFile reports whether the encryption key comes from file: one is named, and
// SESSIOND_ENCRYPTION_KEY, which overrides it, is not set.
func keyFromFile(file string) bool {
	return file != "" && os.Getenv("SESSIOND_ENCRYPTION_KEY") == ""
}

// warnOpenKeyFile warns when the encryption key file (if the key came from one) can be read by
// others than its owner: the key opens every session record. Windows permissions are not
// mode bits, so it says nothing there.
func warnOpenKeyFile(file string, log *slog.Logger) {
	if !keyFromFile(file) || runtime.GOOS == "windows" {
		return
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the encryption key file can be read by others than its owner: chmod 600 it", "file", file, "mode", fi.Mode().Perm().String())
	}
}

// hostInfo describes this server in session objects. The UUID is stable for a host and store.
func hostInfo(store string) engine.HostInfo {
	name, _ := os.Hostname()
	sum := sha256.Sum256([]byte(name + "\x00" + store))
	sum[6] = (sum[6] & 0x0f) | 0x50 // a name-based UUID (version 5 layout)
	sum[8] = (sum[8] & 0x3f) | 0x80
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	var ips []string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() {
				ips = append(ips, ipn.IP.String())
			}
		}
	}
	return engine.HostInfo{Hostname: name, UUID: uuid, IPAddresses: ips}
}

// bootstrapAdmin creates the admin account on a new store.
func bootstrapAdmin(eng *engine.Engine, stderr io.Writer, log *slog.Logger) error {
	password := os.Getenv("SESSIOND_ADMIN_PASSWORD")
	generated := password == ""
	if generated {
		var raw [18]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return err
		}
		password = base64.RawURLEncoding.EncodeToString(raw[:])
	}
	created, err := eng.Bootstrap(context.Background(), "admin", password)
	if err != nil {
		return fmt.Errorf("creating the admin account: %w", err)
	}
	switch {
	case created:
		log.Info("created the admin account", "username", "admin")
		if generated {
			fmt.Fprintf(stderr, "\nsessiond: created account \"admin\" with password: %s\n(shown once; set SESSIOND_ADMIN_PASSWORD to choose it)\n\n", password)
		}
	case !generated:
		// With a shared store another node may have made the first admin, with its own
		// password; said at every start, so not as a warning.
		log.Info("SESSIOND_ADMIN_PASSWORD not used: the store has accounts already, and it sets the password of a new store's first admin only")
	}
	return nil
}

// pinToCPUs runs the server on the CPUs of list (--cpus): its threads are pinned, GOMAXPROCS
// follows the count unless the GOMAXPROCS variable sets it, and the hash helpers, started
// later, are told the CPUs the server had before, so that pinning the server does not slow
// logins down. It returns how many CPUs the helpers have.
func pinToCPUs(list string, log *slog.Logger) (helperCPUs int, err error) {
	before, now, err := pinTo(list)
	if err != nil {
		return 0, badUsage{fmt.Errorf("--cpus: %v", err)}
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.SetDefaultGOMAXPROCS()
	}
	if err := os.Setenv(hashWorkerCPUs, formatCPUList(before)); err != nil {
		return 0, err
	}
	log.Info("pinned to CPUs", "cpus", formatCPUList(now), "gomaxprocs", runtime.GOMAXPROCS(0),
		"hash_helper_cpus", formatCPUList(before))
	return len(before), nil
}

// flagError is the exit code of a command whose flags did not parse: 0 for --help (already
// printed), else usageError's after saying what was wrong (pflag says nothing when it may
// continue).
func flagError(stderr io.Writer, command string, err error) int {
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	return usageError(stderr, command, err.Error())
}

// usageError says what was wrong with a command line, and where to read how it goes, and
// returns its exit code, 2.
func usageError(stderr io.Writer, command, msg string) int {
	fmt.Fprintf(stderr, "sessiond %s: %s\nsee sessiond %s --help\n", command, msg, command)
	return 2
}

// rpcOptions are the transports' options from the "server" section. The section's 0 for a
// timeout is "never", which rpc.Options spells negative (its 0 is the default).
func rpcOptions(c ServerConfig, log *slog.Logger) rpc.Options {
	never := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return rpc.Options{
		MaxRequestBytes:    c.MaxRequestBytes,
		MaxBatch:           c.MaxBatch,
		MaxConnections:     c.MaxConnections,
		MaxInFlightPerConn: c.MaxInFlightPerConnection,
		ReadIdleTimeout:    never(c.ReadIdleTimeout),
		WriteTimeout:       never(c.WriteTimeout),
		Logger:             log,
	}
}

// btoi is 1 for true, 0 for false.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
