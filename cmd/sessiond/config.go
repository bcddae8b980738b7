package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/rpc"
)

// Config is everything services.json configures: the engine's rules and defaults, the
// network listeners and their limits, and storage. Every key of the file is optional;
// DefaultConfig holds the value of each key that is absent.
//
// The file has five sections, each optional:
//
//   - jsonActionApiDefaults: the FairCom keys (session defaults, session caps, permanent
//     sessions) plus maxSessionLifetimeSeconds;
//   - sessionKeyProperties: the NetX user.* properties of authenticate session keys;
//   - server: listener addresses and protocol limits;
//   - security: password hashing, lockout, login throttling, preference limits;
//   - storage: flush and housekeeping intervals, encryption key file, Redis key prefix.
type Config struct {
	// Engine is ready for engine.New once the command has filled in Host, Clock, Rand and
	// Logger. Fields that services.json cannot set keep their zero value.
	Engine  engine.Config
	Server  ServerConfig
	Storage StorageConfig
}

// ServerConfig is the "server" section: where sessiond listens and the limits that protect
// it from oversized or overly eager clients.
type ServerConfig struct {
	// TCPAddr (server.tcpAddress) is the host:port of the newline-delimited JSON-RPC listener;
	// "" opens none (the file may also say "off"). Default "127.0.0.1:7400".
	TCPAddr string
	// HTTPAddr (server.httpAddress) is the host:port of the HTTP listener (POST /); "" opens
	// none (the file may also say "off"). Default "127.0.0.1:7401".
	HTTPAddr string
	// MaxRequestBytes (server.maxRequestBytes) is the largest request line or HTTP body
	// accepted. Default 1 MiB.
	MaxRequestBytes int
	// MaxBatch (server.maxBatchLength) is the most requests one batch may hold. Default 100.
	MaxBatch int
	// MaxConnections (server.maxConnections) is the most TCP connections open at once and,
	// separately, the most HTTP connections (keep-alive ones too). Default 1024.
	MaxConnections int
	// MaxInFlightPerConnection (server.maxInFlightPerConnection) is the most requests of one
	// connection being worked on at once; further requests wait. Default 64.
	MaxInFlightPerConnection int
	// ReadIdleTimeout (server.readIdleTimeoutSeconds) closes a connection that sends nothing
	// for that long while no request of it is in flight; 0 never does. Default 5 minutes.
	ReadIdleTimeout time.Duration
	// WriteTimeout (server.writeTimeoutSeconds) closes a connection whose client does not take
	// a reply within that long; 0 waits for ever. Default 30 seconds.
	WriteTimeout time.Duration
}

// StorageConfig is the "storage" section, except housekeepingIntervalSeconds, which is
// engine.Config.HousekeepingInterval.
type StorageConfig struct {
	// FlushInterval (storage.flushIntervalMilliseconds) is how often last-use times of
	// sessions, kept in memory, are written to the store. A crash loses at most this much
	// keep-alive history, which only makes sessions expire sooner. Default 1 second.
	FlushInterval time.Duration
	// EncryptionKeyFile (storage.encryptionKeyFile) names a file holding the key that
	// encrypts the Badger data directory; "" stores it unencrypted. LoadConfig resolves a
	// relative name against the directory of services.json. Default "".
	EncryptionKeyFile string
	// RedisKeyPrefix (storage.redisKeyPrefix) starts every key sessiond writes to Redis
	// (--store redis://…), so several deployments can share one Redis. Default "sessiond:".
	RedisKeyPrefix string
}

// Defaults of the keys that the engine's defaults do not already cover.
const (
	DefaultTCPAddr                  = "127.0.0.1:7400"
	DefaultHTTPAddr                 = "127.0.0.1:7401"
	DefaultMaxRequestBytes          = 1 << 20
	DefaultMaxBatch                 = 100
	DefaultMaxConnections           = 1024
	DefaultMaxInFlightPerConnection = 64
	DefaultReadIdleTimeout          = rpc.DefaultReadIdleTimeout
	DefaultWriteTimeout             = rpc.DefaultWriteTimeout
	DefaultFlushInterval            = time.Second
	DefaultRedisKeyPrefix           = "sessiond:"
)

// DefaultConfig returns the configuration of an absent or empty services.json: the values of
// the services.json example in API.md §6, the NetX defaults, and sessiond's own defaults.
func DefaultConfig() *Config {
	return &Config{
		Engine: engine.Config{
			Defaults: engine.Defaults{
				Settings: engine.SessionSettings{
					DefaultAPI:           "admin",
					DefaultDebug:         "none",
					DefaultDatabaseName:  "faircom",
					DefaultOwnerName:     "admin",
					DefaultBinaryFormat:  "hex",
					DefaultVariantFormat: "json",
					DefaultResponseOptions: engine.ResponseOptions{
						BinaryFormat: "hex",
						DataFormat:   "arrays",
						NumberFormat: "number",
					},
					DefaultRetentionPolicy:       "autoPurge",
					DefaultRetentionUnit:         "week",
					DefaultRetentionPeriod:       4,
					IdleConnectionTimeoutSeconds: 3600,
					IdleCursorTimeoutSeconds:     600,
				},
				Caps: engine.Caps{
					MaxSessions:           1024,
					MaxSessionsPerAddress: 50,
					MaxSessionsPerUser:    50,
				},
			},
			NetX: engine.NetXProperties{
				SessionDurationMinutes:   30,
				InactivityTimeoutMinutes: 60,
			},
			Hash:                      engine.DefaultHashParams,
			DefaultLockoutAfter:       5,
			DefaultLockoutWaitMinutes: 15,
			LoginFailuresPerAddress:   20,
			LoginThrottleWindow:       time.Minute,
			MaxPreferencesPerUser:     1000,
			HousekeepingInterval:      10 * time.Second,
		},
		Server: ServerConfig{
			TCPAddr:                  DefaultTCPAddr,
			HTTPAddr:                 DefaultHTTPAddr,
			MaxRequestBytes:          DefaultMaxRequestBytes,
			MaxBatch:                 DefaultMaxBatch,
			MaxConnections:           DefaultMaxConnections,
			MaxInFlightPerConnection: DefaultMaxInFlightPerConnection,
			ReadIdleTimeout:          DefaultReadIdleTimeout,
			WriteTimeout:             DefaultWriteTimeout,
		},
		Storage: StorageConfig{
			FlushInterval:  DefaultFlushInterval,
			RedisKeyPrefix: DefaultRedisKeyPrefix,
		},
	}
}

// maxConfigFileBytes bounds what LoadConfig reads; real files are a few kilobytes.
const maxConfigFileBytes = 16 << 20

// LoadConfig reads and checks the services.json at path (see ParseConfig). Errors name the
// file as path. A relative storage.encryptionKeyFile is taken relative to the directory of
// path, so the server finds it whatever its working directory.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(data) > maxConfigFileBytes {
		return nil, fmt.Errorf("%s: file is larger than %d MiB; is it the right file?", path, maxConfigFileBytes>>20)
	}
	cfg, err := parseConfig(path, data)
	if err != nil {
		return nil, err
	}
	if k := cfg.Storage.EncryptionKeyFile; k != "" && !filepath.IsAbs(k) {
		cfg.Storage.EncryptionKeyFile = filepath.Join(filepath.Dir(path), k)
	}
	return cfg, nil
}

// ParseConfig parses and checks the contents of a services.json: one JSON object whose
// sections and keys are all optional; absent keys keep their DefaultConfig value. It is
// strict, so that a typing mistake stops the start instead of being ignored: invalid JSON, a
// duplicate key, an unknown key, a value of the wrong type and a value out of range are all
// errors. Each problem is a *ConfigError naming the file ("services.json"), the line and
// column, and the key's dotted path; when there are several, the returned error joins them
// (errors.Join), one per line, in file order.
func ParseConfig(data []byte) (*Config, error) {
	return parseConfig("services.json", data)
}

// ConfigError is one problem in services.json. Its message reads
//
//	FILE:LINE:COLUMN: KEY: REASON
//
// for example
//
//	services.json:4:1: jsonActionApiDefaults.maxJsonApiSesions: unknown key (did you mean "maxJsonApiSessions"?)
//
// and FILE:LINE:COLUMN: REASON when the file is not valid JSON.
type ConfigError struct {
	// File is the path given to LoadConfig, or "services.json" for ParseConfig.
	File string
	// Line and Column (both from 1; Column counts characters) locate the key or value.
	Line, Column int
	// Key is the dotted path of the key, such as "sessionKeyProperties.user.sessionDuration";
	// it is empty for JSON syntax errors.
	Key string
	// Reason says what is wrong and what is allowed.
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Reason)
	}
	key := e.Key
	if strings.ContainsFunc(key, func(r rune) bool { return !unicode.IsPrint(r) }) {
		key = strconv.Quote(key) // a problem stays one line
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Column, key, e.Reason)
}

// maxReportedProblems bounds how many problems one error lists.
const maxReportedProblems = 20

func parseConfig(file string, data []byte) (*Config, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // editors on Windows add a BOM
	p := &jsonParser{file: file, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	root, err := p.document()
	if err != nil {
		return nil, err
	}
	cfg := DefaultConfig()
	d := &configDecoder{file: file, data: data}
	d.root(root, cfg)
	switch len(d.problems) {
	case 0:
		return cfg, nil
	case 1:
		return nil, d.problems[0]
	}
	errs := make([]error, 0, min(len(d.problems), maxReportedProblems)+1)
	for _, problem := range d.problems[:min(len(d.problems), maxReportedProblems)] {
		errs = append(errs, problem)
	}
	if n := len(d.problems) - maxReportedProblems; n > 0 {
		errs = append(errs, fmt.Errorf("%s: … and %d more problems", file, n))
	}
	return nil, errors.Join(errs...)
}

// The schema of services.json. Each section decoder lists its keys; anything else is an
// unknown key.

func (d *configDecoder) root(n *jsonNode, cfg *Config) {
	d.object(n, "", fieldSet{
		"jsonActionApiDefaults": func(n *jsonNode, path string) { d.apiDefaults(n, path, &cfg.Engine.Defaults) },
		"sessionKeyProperties":  func(n *jsonNode, path string) { d.sessionKeyProperties(n, path, &cfg.Engine.NetX) },
		"server":                func(n *jsonNode, path string) { d.server(n, path, &cfg.Server) },
		"security":              func(n *jsonNode, path string) { d.security(n, path, &cfg.Engine) },
		"storage":               func(n *jsonNode, path string) { d.storage(n, path, cfg) },
	})
}

const maxInt32 = math.MaxInt32

func (d *configDecoder) apiDefaults(n *jsonNode, path string, defaults *engine.Defaults) {
	s := &defaults.Settings
	caps := &defaults.Caps
	d.object(n, path, fieldSet{
		"defaultApi":          d.name(&s.DefaultAPI),
		"defaultBinaryFormat": d.enum(&s.DefaultBinaryFormat, engine.BinaryFormatValues),
		"defaultDatabaseName": d.name(&s.DefaultDatabaseName),
		"defaultDebug":        d.enum(&s.DefaultDebug, engine.DebugValues),
		"defaultOwnerName":    d.name(&s.DefaultOwnerName),
		"defaultResponseOptions": func(n *jsonNode, path string) {
			r := &s.DefaultResponseOptions
			d.object(n, path, fieldSet{
				"binaryFormat": d.enum(&r.BinaryFormat, engine.BinaryFormatValues),
				"dataFormat":   d.enum(&r.DataFormat, engine.DataFormatValues),
				"numberFormat": d.enum(&r.NumberFormat, engine.NumberFormatValues),
			})
		},
		"defaultRetentionPeriod":         d.integer(0, maxInt32, "0–2147483647", func(v int64) { s.DefaultRetentionPeriod = int(v) }),
		"defaultRetentionPolicy":         d.name(&s.DefaultRetentionPolicy),
		"defaultRetentionUnit":           d.name(&s.DefaultRetentionUnit),
		"defaultVariantFormat":           d.name(&s.DefaultVariantFormat),
		"enablePermanentJsonApiSessions": d.boolean(&defaults.EnablePermanentSessions),
		"idleConnectionTimeoutSeconds": d.integer(0, engine.MaxTimeoutSeconds, "0 (never) to 2147483647 seconds",
			func(v int64) { s.IdleConnectionTimeoutSeconds = v }),
		"idleCursorTimeoutSeconds": d.integer(-1, engine.MaxTimeoutSeconds, "-1 (never) to 2147483647 seconds",
			func(v int64) { s.IdleCursorTimeoutSeconds = v }),
		engine.LimitMaxSessions: d.integer(0, maxInt32, "0 (no limit) to 2147483647",
			func(v int64) { caps.MaxSessions = int(v) }),
		engine.LimitMaxSessionsPerAddress: d.integer(0, maxInt32, "0 (no limit) to 2147483647",
			func(v int64) { caps.MaxSessionsPerAddress = int(v) }),
		engine.LimitMaxSessionsPerUser: d.integer(0, maxInt32, "0 (no limit) to 2147483647",
			func(v int64) { caps.MaxSessionsPerUser = int(v) }),
		"maxSessionLifetimeSeconds": d.integer(0, maxInt32, "0 (off) to 2147483647 seconds",
			func(v int64) { defaults.MaxSessionLifetime = time.Duration(v) * time.Second }),
	})
}

// maxSessionKeyMinutes is NetX's bound on user.sessionDuration (2^31-1 milliseconds).
const maxSessionKeyMinutes = 35791

func (d *configDecoder) sessionKeyProperties(n *jsonNode, path string, netx *engine.NetXProperties) {
	d.object(n, path, fieldSet{
		"user.sessionDuration": d.integer(0, maxSessionKeyMinutes, "0 (meaning 30) or 1–35791", func(v int64) {
			if v == 0 {
				v = 30 // NetX: "setting this value to 0 will result in the default timeout value of 30 min"
			}
			netx.SessionDurationMinutes = int(v)
		}),
		"user.sessionInactivityTimeout": d.integer(0, engine.MaxTimeoutSeconds/60, "0 (off) to 35791394 minutes",
			func(v int64) { netx.InactivityTimeoutMinutes = int(v) }),
		"user.sessionNoTickle":    d.boolean(&netx.NoTickle),
		"user.sessionPersistence": d.boolean(&netx.Persistence),
	})
}

func (d *configDecoder) server(n *jsonNode, path string, s *ServerConfig) {
	d.object(n, path, fieldSet{
		"tcpAddress":               d.address(&s.TCPAddr, DefaultTCPAddr),
		"httpAddress":              d.address(&s.HTTPAddr, DefaultHTTPAddr),
		"maxRequestBytes":          d.integer(1<<10, 1<<30, "1024–1073741824 bytes", func(v int64) { s.MaxRequestBytes = int(v) }),
		"maxBatchLength":           d.integer(1, 10000, "1–10000", func(v int64) { s.MaxBatch = int(v) }),
		"maxConnections":           d.integer(1, 1000000, "1–1000000", func(v int64) { s.MaxConnections = int(v) }),
		"maxInFlightPerConnection": d.integer(1, 10000, "1–10000", func(v int64) { s.MaxInFlightPerConnection = int(v) }),
		"readIdleTimeoutSeconds": d.integer(0, maxInt32, "0 (no timeout) to 2147483647 seconds",
			func(v int64) { s.ReadIdleTimeout = time.Duration(v) * time.Second }),
		"writeTimeoutSeconds": d.integer(0, maxInt32, "0 (no timeout) to 2147483647 seconds",
			func(v int64) { s.WriteTimeout = time.Duration(v) * time.Second }),
	})
}

// Bounds of the argon2id parameters: 4 GiB of memory, and the parallelism of its uint8 field.
const (
	maxHashMemoryKiB  = 4 << 20
	maxHashIterations = 1000
	maxHashLanes      = math.MaxUint8
)

func (d *configDecoder) security(n *jsonNode, path string, e *engine.Config) {
	d.object(n, path, fieldSet{
		"passwordHash": func(n *jsonNode, path string) {
			var memoryNode *jsonNode
			d.object(n, path, fieldSet{
				"memoryKiB": func(n *jsonNode, path string) {
					memoryNode = n
					d.integer(1, maxHashMemoryKiB, "8×parallelism to 4194304 KiB", func(v int64) { e.Hash.MemoryKiB = uint32(v) })(n, path)
				},
				"iterations":  d.integer(1, maxHashIterations, "1–1000", func(v int64) { e.Hash.Iterations = uint32(v) }),
				"parallelism": d.integer(1, maxHashLanes, "1–255", func(v int64) { e.Hash.Parallelism = uint8(v) }),
			})
			// argon2 needs 8 KiB per lane; checked once both keys are known.
			if lanes := uint32(e.Hash.Parallelism); n.kind == kindObject && e.Hash.MemoryKiB < 8*lanes {
				at := memoryNode
				if at == nil {
					at = n
				}
				d.fail(at.offset, path+".memoryKiB", "must be at least 8 KiB per lane (8×parallelism = %d), got %d", 8*lanes, e.Hash.MemoryKiB)
			}
		},
		"maxConcurrentHashes": d.integer(0, 1024, "0 (one per CPU) to 1024", func(v int64) { e.MaxConcurrentHashes = int(v) }),
		"lockoutAfterNFailedAttempts": d.integer(1, 1000, "1–1000 (accounts can turn lockout off one by one)",
			func(v int64) { e.DefaultLockoutAfter = int(v) }),
		"lockoutWaitMinutes": d.integer(1, 525600, "1–525600 minutes (one year)",
			func(v int64) { e.DefaultLockoutWaitMinutes = int(v) }),
		"loginFailuresPerAddress": d.integer(0, 1000000, "0 (no throttling) to 1000000", func(v int64) {
			if v == 0 {
				v = -1 // the engine's "off"; its 0 means "default"
			}
			e.LoginFailuresPerAddress = int(v)
		}),
		"loginThrottleWindowSeconds": d.integer(1, 86400, "1–86400 seconds",
			func(v int64) { e.LoginThrottleWindow = time.Duration(v) * time.Second }),
		"maxPreferencesPerUser": d.integer(1, 1000000, "1–1000000", func(v int64) { e.MaxPreferencesPerUser = int(v) }),
	})
}

func (d *configDecoder) storage(n *jsonNode, path string, cfg *Config) {
	s := &cfg.Storage
	d.object(n, path, fieldSet{
		"flushIntervalMilliseconds": d.integer(1, 3600000, "1–3600000 milliseconds",
			func(v int64) { s.FlushInterval = time.Duration(v) * time.Millisecond }),
		"encryptionKeyFile": d.str(func(n *jsonNode, path, v string) {
			if strings.IndexByte(v, 0) >= 0 {
				d.fail(n.offset, path, "must be a file name, got a string with a NUL byte")
				return
			}
			s.EncryptionKeyFile = v
		}),
		"redisKeyPrefix": d.str(func(n *jsonNode, path, v string) {
			if len(v) > 256 {
				d.fail(n.offset, path, "must be at most 256 bytes, got %d", len(v))
				return
			}
			s.RedisKeyPrefix = v
		}),
		"housekeepingIntervalSeconds": d.integer(0, 86400, "0 (off) to 86400 seconds", func(v int64) {
			if v == 0 {
				cfg.Engine.HousekeepingInterval = -1 // the engine's "off"; its 0 means "default"
				return
			}
			cfg.Engine.HousekeepingInterval = time.Duration(v) * time.Second
		}),
	})
}

// configDecoder walks the parsed file, fills a Config and collects problems.
type configDecoder struct {
	file     string
	data     []byte
	problems []*ConfigError
}

// fieldSet maps the keys of one object to their decoders, which get the value and its path.
type fieldSet map[string]func(n *jsonNode, path string)

func (d *configDecoder) fail(offset int, path, format string, args ...any) {
	line, col := position(d.data, offset)
	d.problems = append(d.problems, &ConfigError{File: d.file, Line: line, Column: col, Key: path, Reason: fmt.Sprintf(format, args...)})
}

// object decodes the members of an object in file order.
func (d *configDecoder) object(n *jsonNode, path string, fields fieldSet) {
	if n.kind != kindObject {
		what := "must be an object {…}"
		if path == "" {
			what = "the file must hold one JSON object {…}"
		}
		d.fail(n.offset, path, "%s, got %s", what, n.describe())
		return
	}
	for _, m := range n.members {
		memberPath := joinPath(path, m.key)
		decode, ok := fields[m.key]
		if !ok {
			d.fail(m.keyOffset, memberPath, "unknown key%s", hint(m.key, fields))
			continue
		}
		decode(m.value, memberPath)
	}
}

func (d *configDecoder) integer(lo, hi int64, want string, set func(int64)) func(*jsonNode, string) {
	return func(n *jsonNode, path string) {
		if n.kind != kindNumber {
			d.fail(n.offset, path, "must be an integer (%s), got %s", want, n.describe())
			return
		}
		v, err := strconv.ParseInt(n.text, 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange):
			d.fail(n.offset, path, "must be %s, got %s", want, n.text)
		case err != nil:
			d.fail(n.offset, path, "must be an integer (%s), got %s", want, n.text)
		case v < lo || v > hi:
			d.fail(n.offset, path, "must be %s, got %d", want, v)
		default:
			set(v)
		}
	}
}

func (d *configDecoder) boolean(dst *bool) func(*jsonNode, string) {
	return func(n *jsonNode, path string) {
		if n.kind != kindBool {
			d.fail(n.offset, path, "must be true or false, got %s", n.describe())
			return
		}
		*dst = n.boolean
	}
}

func (d *configDecoder) str(set func(n *jsonNode, path, v string)) func(*jsonNode, string) {
	return func(n *jsonNode, path string) {
		if n.kind != kindString {
			d.fail(n.offset, path, "must be a string, got %s", n.describe())
			return
		}
		set(n, path, n.text)
	}
}

// enum decodes one of allowed, ignoring case as createSession does, into its spelling there.
func (d *configDecoder) enum(dst *string, allowed []string) func(*jsonNode, string) {
	return d.str(func(n *jsonNode, path, v string) {
		c, ok := engine.Canonical(v, allowed)
		if !ok {
			d.fail(n.offset, path, "must be %s, got %q", orList(allowed), v)
			return
		}
		*dst = c
	})
}

// name decodes a free-form default such as defaultDatabaseName: what createSession would
// accept, at most engine.MaxNameBytes without control characters ("" means none).
func (d *configDecoder) name(dst *string) func(*jsonNode, string) {
	return d.str(func(n *jsonNode, path, v string) {
		if len(v) > engine.MaxNameBytes {
			d.fail(n.offset, path, "must be at most %d bytes, got %d", engine.MaxNameBytes, len(v))
			return
		}
		if strings.IndexFunc(v, unicode.IsControl) >= 0 {
			d.fail(n.offset, path, "must not contain control characters, got %q", v)
			return
		}
		*dst = v
	})
}

// address decodes a listen address: host:port with a numeric port (0 picks a free one), or
// "" or "off" for no listener (stored as "").
func (d *configDecoder) address(dst *string, example string) func(*jsonNode, string) {
	return d.str(func(n *jsonNode, path, v string) {
		if v == "off" {
			v = ""
		}
		if v != "" {
			_, port, err := net.SplitHostPort(v)
			if err == nil {
				if p, perr := strconv.ParseUint(port, 10, 16); perr != nil || strconv.FormatUint(p, 10) != port {
					err = fmt.Errorf("port %q is not a number from 0 to 65535", port)
				}
			}
			if err != nil {
				reason := err.Error()
				var ae *net.AddrError
				if errors.As(err, &ae) {
					reason = ae.Err
				}
				d.fail(n.offset, path, "must be host:port such as %q, or \"off\" for no listener; got %q (%s)", example, v, reason)
				return
			}
		}
		*dst = v
	})
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	if len(quoted) < 2 {
		return strings.Join(quoted, "")
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}

// objectKeys are the keys of services.json whose values are objects (hint).
var objectKeys = map[string]bool{
	"jsonActionApiDefaults": true, "sessionKeyProperties": true, "server": true, "security": true,
	"storage": true, "defaultResponseOptions": true, "passwordHash": true,
}

// hint returns suggest's hint, or, for a dotted key whose first part is a known key of an
// object (the README's table writes nested keys so: passwordHash.memoryKiB), how to nest it.
func hint(key string, fields fieldSet) string {
	if first, rest, ok := strings.Cut(key, "."); ok && objectKeys[first] {
		if _, known := fields[first]; known {
			return fmt.Sprintf(` (write it nested: %q: {%q: …})`, first, rest)
		}
	}
	return suggest(key, fields)
}

// suggest returns ` (did you mean "K"?)` for the known key K closest to a mistyped one, or "":
// the key with NetX's "user." before it, or one within two edits.
func suggest(key string, fields fieldSet) string {
	for known := range fields {
		if strings.EqualFold(known, "user."+key) {
			return fmt.Sprintf(" (did you mean %q?)", known)
		}
	}
	best, bestDistance := "", 3 // suggest only within two edits
	for known := range fields {
		dist := editDistance(strings.ToLower(key), strings.ToLower(known))
		if dist < bestDistance || (dist == bestDistance && best != "" && known < best) {
			best, bestDistance = known, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 100 || len(rb) > 100 {
		return math.MaxInt // not a typo of any key
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// position turns a byte offset into a 1-based line and character column.
func position(data []byte, offset int) (line, column int) {
	offset = max(0, min(offset, len(data)))
	before := data[:offset]
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return 1 + bytes.Count(before, []byte("\n")), 1 + utf8.RuneCount(before[lineStart:])
}

// A jsonNode is one parsed JSON value with the offset where it starts, so that problems can
// point at it.
type jsonNode struct {
	kind    jsonKind
	offset  int
	text    string // a string's value or a number's literal
	boolean bool
	members []jsonMember // an object's members, in file order
}

type jsonMember struct {
	key       string
	keyOffset int
	value     *jsonNode
}

type jsonKind int

const (
	kindNull jsonKind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

// describe says what a value is, for "got …" in messages.
func (n *jsonNode) describe() string {
	switch n.kind {
	case kindNull:
		return "null"
	case kindBool:
		return strconv.FormatBool(n.boolean)
	case kindNumber:
		return n.text
	case kindString:
		s := n.text
		if utf8.RuneCountInString(s) > 40 {
			s = string([]rune(s)[:40]) + "…"
		}
		return "string " + strconv.Quote(s)
	case kindObject:
		return "an object"
	default:
		return "an array"
	}
}

// jsonParser turns services.json into jsonNodes, rejecting invalid JSON and duplicate keys.
type jsonParser struct {
	file string
	data []byte
	dec  *json.Decoder
}

// maxNesting bounds how deeply values nest; services.json needs three levels.
const maxNesting = 64

func (p *jsonParser) document() (*jsonNode, error) {
	if len(bytes.TrimSpace(p.data)) == 0 {
		return nil, &ConfigError{File: p.file, Line: 1, Column: 1, Reason: "invalid JSON: the file is empty (write {} to use every default)"}
	}
	// The decoder's token errors point near, not at, the mistake; a full scan first gives
	// syntax errors their exact position.
	var whole json.RawMessage
	if err := json.Unmarshal(p.data, &whole); err != nil {
		return nil, p.syntaxError(err)
	}
	root, err := p.value("", 0)
	if err != nil {
		return nil, err
	}
	rest := p.next()
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, p.errorAt(rest, "invalid JSON: unexpected data after the top-level value")
	}
	return root, nil
}

// next returns the offset of the next token: past white space and the ',' or ':' that the
// decoder consumes before a value.
func (p *jsonParser) next() int {
	i := int(p.dec.InputOffset())
	for i < len(p.data) && strings.IndexByte(" \t\r\n,:", p.data[i]) >= 0 {
		i++
	}
	return i
}

func (p *jsonParser) errorAt(offset int, reason string) error {
	line, col := position(p.data, offset)
	return &ConfigError{File: p.file, Line: line, Column: col, Reason: reason}
}

func (p *jsonParser) syntaxError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se) && !strings.HasPrefix(se.Error(), "unexpected end of JSON input"):
		return p.errorAt(int(se.Offset)-1, "invalid JSON: "+se.Error()) // Offset counts the bad byte
	case se != nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return p.errorAt(len(p.data), "invalid JSON: unexpected end of file")
	default:
		return p.errorAt(p.next(), "invalid JSON: "+err.Error())
	}
}

func (p *jsonParser) value(path string, depth int) (*jsonNode, error) {
	start := p.next()
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntaxError(err)
	}
	n := &jsonNode{offset: start}
	switch t := tok.(type) {
	case nil:
		n.kind = kindNull
	case bool:
		n.kind, n.boolean = kindBool, t
	case json.Number:
		n.kind, n.text = kindNumber, t.String()
	case string:
		n.kind, n.text = kindString, t
	case json.Delim:
		if depth >= maxNesting {
			return nil, p.errorAt(start, fmt.Sprintf("%s: values nest more than %d deep", displayPath(path), maxNesting))
		}
		if t == '{' {
			n.kind = kindObject
			err = p.objectMembers(n, path, depth)
		} else {
			n.kind = kindArray
			for i := 0; err == nil && p.dec.More(); i++ {
				_, err = p.value(fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
		}
		if err != nil {
			return nil, err
		}
		if _, err := p.dec.Token(); err != nil { // the closing '}' or ']'
			return nil, p.syntaxError(err)
		}
	}
	return n, nil
}

func (p *jsonParser) objectMembers(n *jsonNode, path string, depth int) error {
	seen := make(map[string]int)
	for p.dec.More() {
		keyOffset := p.next()
		tok, err := p.dec.Token()
		if err != nil {
			return p.syntaxError(err)
		}
		key, ok := tok.(string)
		if !ok { // the decoder reports this itself; be safe anyway
			return p.errorAt(keyOffset, "invalid JSON: object key must be a string")
		}
		keyPath := joinPath(path, key)
		if first, dup := seen[key]; dup {
			firstLine, firstCol := position(p.data, first)
			line, col := position(p.data, keyOffset)
			return &ConfigError{File: p.file, Line: line, Column: col, Key: keyPath,
				Reason: fmt.Sprintf("duplicate key (first at line %d, column %d)", firstLine, firstCol)}
		}
		seen[key] = keyOffset
		value, err := p.value(keyPath, depth+1)
		if err != nil {
			return err
		}
		n.members = append(n.members, jsonMember{key: key, keyOffset: keyOffset, value: value})
	}
	return nil
}

func displayPath(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}
