package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/engine"
)

// Config files in the repository's testdata, shared with the documentation.
const (
	seedConfigFile       = "../../testdata/config/faircom-seed.json"
	apiExampleConfigFile = "../../testdata/config/api-example.json"
)

// TestParseConfigFairComSeed checks that seed 000's jsonActionApiDefaults section loads as it
// is and lands in the right engine.Config fields.
func TestParseConfigFairComSeed(t *testing.T) {
	cfg, err := LoadConfig(seedConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	wantDefaults := engine.Defaults{
		Settings: engine.SessionSettings{
			DefaultAPI:                   "hub",
			DefaultBinaryFormat:          "hex",
			DefaultDatabaseName:          "faircom",
			DefaultDebug:                 "max",
			DefaultOwnerName:             "admin",
			DefaultVariantFormat:         "json", // not in the seed: our default
			DefaultResponseOptions:       engine.ResponseOptions{BinaryFormat: "hex", DataFormat: "objects", NumberFormat: "number"},
			IdleConnectionTimeoutSeconds: 3600,
			IdleCursorTimeoutSeconds:     600,
			DefaultRetentionPolicy:       "autoPurge",
			DefaultRetentionUnit:         "week",
			DefaultRetentionPeriod:       4,
		},
		Caps:                    engine.Caps{MaxSessions: 1024, MaxSessionsPerAddress: 50, MaxSessionsPerUser: 50},
		EnablePermanentSessions: true,
	}
	if !reflect.DeepEqual(cfg.Engine.Defaults, wantDefaults) {
		t.Errorf("jsonActionApiDefaults:\n got %+v\nwant %+v", cfg.Engine.Defaults, wantDefaults)
	}
	// Everything the seed does not mention keeps its default.
	want := DefaultConfig()
	want.Engine.Defaults = wantDefaults
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("other sections changed:\n got %+v\nwant %+v", cfg, want)
	}
}

// TestParseConfigAPIExample checks that the services.json example of API.md §6 loads and maps
// to the engine's defaults and NetX properties.
func TestParseConfigAPIExample(t *testing.T) {
	cfg, err := LoadConfig(apiExampleConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"idleConnectionTimeoutSeconds", cfg.Engine.Defaults.Settings.IdleConnectionTimeoutSeconds, int64(3600)},
		{"idleCursorTimeoutSeconds", cfg.Engine.Defaults.Settings.IdleCursorTimeoutSeconds, int64(600)},
		{"caps", cfg.Engine.Defaults.Caps, engine.Caps{MaxSessions: 1024, MaxSessionsPerAddress: 50, MaxSessionsPerUser: 50}},
		{"enablePermanentJsonApiSessions", cfg.Engine.Defaults.EnablePermanentSessions, false},
		{"defaultApi", cfg.Engine.Defaults.Settings.DefaultAPI, "admin"},
		{"defaultDebug", cfg.Engine.Defaults.Settings.DefaultDebug, "none"},
		{"sessionKeyProperties", cfg.Engine.NetX, engine.NetXProperties{SessionDurationMinutes: 30, InactivityTimeoutMinutes: 60}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
		}
	}
	// The example states the defaults, so it must equal an empty file.
	if !reflect.DeepEqual(cfg, DefaultConfig()) {
		t.Errorf("the API.md example differs from the defaults:\n got %+v\nwant %+v", cfg, DefaultConfig())
	}
}

// everyKeyFile sets every key services.json knows, none to its default.
const everyKeyFile = `{
  "jsonActionApiDefaults": {
    "defaultApi": "db",
    "defaultBinaryFormat": "base64",
    "defaultDatabaseName": "ctreeSQL",
    "defaultDebug": "max",
    "defaultOwnerName": "owner",
    "defaultResponseOptions": { "binaryFormat": "byteArray", "dataFormat": "objects", "numberFormat": "string" },
    "defaultRetentionPeriod": 14,
    "defaultRetentionPolicy": "neverPurge",
    "defaultRetentionUnit": "day",
    "defaultVariantFormat": "variantObject",
    "enablePermanentJsonApiSessions": true,
    "idleConnectionTimeoutSeconds": 900,
    "idleCursorTimeoutSeconds": -1,
    "maxJsonApiSessions": 10000,
    "maxJsonApiSessionsPerIpAddress": 100,
    "maxJsonApiSessionsPerUsername": 20,
    "maxSessionLifetimeSeconds": 43200
  },
  "sessionKeyProperties": {
    "user.sessionDuration": 45,
    "user.sessionInactivityTimeout": 0,
    "user.sessionNoTickle": true,
    "user.sessionPersistence": true
  },
  "server": {
    "tcpAddress": "0.0.0.0:7500",
    "httpAddress": "off",
    "maxRequestBytes": 65536,
    "maxBatchLength": 20,
    "maxConnections": 256,
    "maxInFlightPerConnection": 8,
    "readIdleTimeoutSeconds": 60,
    "writeTimeoutSeconds": 5
  },
  "security": {
    "passwordHash": { "memoryKiB": 65536, "iterations": 3, "parallelism": 2 },
    "maxConcurrentHashes": 4,
    "lockoutAfterNFailedAttempts": 10,
    "lockoutWaitMinutes": 30,
    "loginFailuresPerAddress": 50,
    "loginThrottleWindowSeconds": 120,
    "maxPreferencesPerUser": 200
  },
  "storage": {
    "flushIntervalMilliseconds": 500,
    "encryptionKeyFile": "/etc/sessiond/at-rest.key",
    "redisKeyPrefix": "prod:sessiond:",
    "housekeepingIntervalSeconds": 30
  }
}`

// TestParseConfigEveryKey checks that a file naming every key loads and that each key lands
// in its field.
func TestParseConfigEveryKey(t *testing.T) {
	got, err := ParseConfig([]byte(everyKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Engine: engine.Config{
			Defaults: engine.Defaults{
				Settings: engine.SessionSettings{
					DefaultAPI: "db", DefaultBinaryFormat: "base64", DefaultDatabaseName: "ctreeSQL", DefaultDebug: "max",
					DefaultOwnerName:       "owner",
					DefaultResponseOptions: engine.ResponseOptions{BinaryFormat: "byteArray", DataFormat: "objects", NumberFormat: "string"},
					DefaultRetentionPeriod: 14, DefaultRetentionPolicy: "neverPurge", DefaultRetentionUnit: "day",
					DefaultVariantFormat:         "variantObject",
					IdleConnectionTimeoutSeconds: 900, IdleCursorTimeoutSeconds: -1,
				},
				Caps:                    engine.Caps{MaxSessions: 10000, MaxSessionsPerAddress: 100, MaxSessionsPerUser: 20},
				EnablePermanentSessions: true,
				MaxSessionLifetime:      12 * time.Hour,
			},
			NetX:                      engine.NetXProperties{SessionDurationMinutes: 45, InactivityTimeoutMinutes: 0, NoTickle: true, Persistence: true},
			Hash:                      engine.HashParams{MemoryKiB: 65536, Iterations: 3, Parallelism: 2},
			MaxConcurrentHashes:       4,
			DefaultLockoutAfter:       10,
			DefaultLockoutWaitMinutes: 30,
			LoginFailuresPerAddress:   50,
			LoginThrottleWindow:       2 * time.Minute,
			MaxPreferencesPerUser:     200,
			HousekeepingInterval:      30 * time.Second,
		},
		Server: ServerConfig{TCPAddr: "0.0.0.0:7500", HTTPAddr: "", MaxRequestBytes: 65536, MaxBatch: 20, MaxConnections: 256,
			MaxInFlightPerConnection: 8, ReadIdleTimeout: time.Minute, WriteTimeout: 5 * time.Second},
		Storage: StorageConfig{FlushInterval: 500 * time.Millisecond, EncryptionKeyFile: "/etc/sessiond/at-rest.key", RedisKeyPrefix: "prod:sessiond:"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
}

// TestDefaultConfig checks every documented default, and that each call returns a fresh copy.
func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	s := cfg.Engine.Defaults.Settings
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"defaultApi", s.DefaultAPI, "admin"},
		{"defaultBinaryFormat", s.DefaultBinaryFormat, "hex"},
		{"defaultDatabaseName", s.DefaultDatabaseName, "faircom"},
		{"defaultDebug", s.DefaultDebug, "none"},
		{"defaultOwnerName", s.DefaultOwnerName, "admin"},
		{"defaultResponseOptions", s.DefaultResponseOptions, engine.ResponseOptions{BinaryFormat: "hex", DataFormat: "arrays", NumberFormat: "number"}},
		{"defaultRetentionPeriod", s.DefaultRetentionPeriod, 4},
		{"defaultRetentionPolicy", s.DefaultRetentionPolicy, "autoPurge"},
		{"defaultRetentionUnit", s.DefaultRetentionUnit, "week"},
		{"defaultVariantFormat", s.DefaultVariantFormat, "json"},
		{"enablePermanentJsonApiSessions", cfg.Engine.Defaults.EnablePermanentSessions, false},
		{"idleConnectionTimeoutSeconds", s.IdleConnectionTimeoutSeconds, int64(3600)},
		{"idleCursorTimeoutSeconds", s.IdleCursorTimeoutSeconds, int64(600)},
		{"caps", cfg.Engine.Defaults.Caps, engine.Caps{MaxSessions: 1024, MaxSessionsPerAddress: 50, MaxSessionsPerUser: 50}},
		{"maxSessionLifetimeSeconds", cfg.Engine.Defaults.MaxSessionLifetime, time.Duration(0)},
		{"user.sessionDuration", cfg.Engine.NetX.SessionDurationMinutes, 30},
		{"user.sessionInactivityTimeout", cfg.Engine.NetX.InactivityTimeoutMinutes, 60},
		{"user.sessionNoTickle", cfg.Engine.NetX.NoTickle, false},
		{"user.sessionPersistence", cfg.Engine.NetX.Persistence, false},
		{"passwordHash", cfg.Engine.Hash, engine.HashParams{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}},
		{"maxConcurrentHashes", cfg.Engine.MaxConcurrentHashes, 0},
		{"lockoutAfterNFailedAttempts", cfg.Engine.DefaultLockoutAfter, 5},
		{"lockoutWaitMinutes", cfg.Engine.DefaultLockoutWaitMinutes, 15},
		{"loginFailuresPerAddress", cfg.Engine.LoginFailuresPerAddress, 20},
		{"loginThrottleWindowSeconds", cfg.Engine.LoginThrottleWindow, time.Minute},
		{"maxPreferencesPerUser", cfg.Engine.MaxPreferencesPerUser, 1000},
		{"housekeepingIntervalSeconds", cfg.Engine.HousekeepingInterval, 10 * time.Second},
		{"tcpAddress", cfg.Server.TCPAddr, "127.0.0.1:7400"},
		{"httpAddress", cfg.Server.HTTPAddr, "127.0.0.1:7401"},
		{"maxRequestBytes", cfg.Server.MaxRequestBytes, 1 << 20},
		{"maxBatchLength", cfg.Server.MaxBatch, 100},
		{"maxConnections", cfg.Server.MaxConnections, 1024},
		{"maxInFlightPerConnection", cfg.Server.MaxInFlightPerConnection, 64},
		{"readIdleTimeoutSeconds", cfg.Server.ReadIdleTimeout, 5 * time.Minute},
		{"writeTimeoutSeconds", cfg.Server.WriteTimeout, 30 * time.Second},
		{"flushIntervalMilliseconds", cfg.Storage.FlushInterval, time.Second},
		{"encryptionKeyFile", cfg.Storage.EncryptionKeyFile, ""},
		{"redisKeyPrefix", cfg.Storage.RedisKeyPrefix, "sessiond:"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	cfg.Engine.Defaults.Settings.DefaultAPI = "changed"
	if DefaultConfig().Engine.Defaults.Settings.DefaultAPI != "admin" {
		t.Error("DefaultConfig shares state between calls")
	}
}

// TestParseConfigDefaulting checks each rule that turns what the file says (or omits) into
// engine and server values.
func TestParseConfigDefaulting(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		want func(*Config) // applied to DefaultConfig()
	}{
		{"empty object gives every default", `{}`, func(*Config) {}},
		{"empty sections give every default",
			`{"jsonActionApiDefaults":{},"sessionKeyProperties":{},"server":{},"security":{},"storage":{}}`, func(*Config) {}},
		{"a UTF-8 byte order mark is ignored", "\ufeff{}", func(*Config) {}},
		{"user.sessionDuration 0 means 30 minutes", `{"sessionKeyProperties":{"user.sessionDuration":0}}`,
			func(c *Config) { c.Engine.NetX.SessionDurationMinutes = 30 }},
		{"user.sessionDuration 1 and 35791 are kept", `{"sessionKeyProperties":{"user.sessionDuration":35791}}`,
			func(c *Config) { c.Engine.NetX.SessionDurationMinutes = 35791 }},
		{"user.sessionInactivityTimeout 0 turns the clock off", `{"sessionKeyProperties":{"user.sessionInactivityTimeout":0}}`,
			func(c *Config) { c.Engine.NetX.InactivityTimeoutMinutes = 0 }},
		{"NetX booleans", `{"sessionKeyProperties":{"user.sessionNoTickle":true,"user.sessionPersistence":true}}`,
			func(c *Config) { c.Engine.NetX.NoTickle, c.Engine.NetX.Persistence = true, true }},
		{"partial defaultResponseOptions keep the other formats",
			`{"jsonActionApiDefaults":{"defaultResponseOptions":{"dataFormat":"objects"}}}`,
			func(c *Config) { c.Engine.Defaults.Settings.DefaultResponseOptions.DataFormat = "objects" }},
		{"idleConnectionTimeoutSeconds 0 means never", `{"jsonActionApiDefaults":{"idleConnectionTimeoutSeconds":0}}`,
			func(c *Config) { c.Engine.Defaults.Settings.IdleConnectionTimeoutSeconds = 0 }},
		{"idleCursorTimeoutSeconds -1 means never", `{"jsonActionApiDefaults":{"idleCursorTimeoutSeconds":-1}}`,
			func(c *Config) { c.Engine.Defaults.Settings.IdleCursorTimeoutSeconds = -1 }},
		{"the largest timeouts fit", `{"jsonActionApiDefaults":{"idleConnectionTimeoutSeconds":2147483647,"idleCursorTimeoutSeconds":2147483647}}`,
			func(c *Config) {
				c.Engine.Defaults.Settings.IdleConnectionTimeoutSeconds = math.MaxInt32
				c.Engine.Defaults.Settings.IdleCursorTimeoutSeconds = math.MaxInt32
			}},
		{"caps of 0 mean no limit",
			`{"jsonActionApiDefaults":{"maxJsonApiSessions":0,"maxJsonApiSessionsPerIpAddress":0,"maxJsonApiSessionsPerUsername":0}}`,
			func(c *Config) { c.Engine.Defaults.Caps = engine.Caps{} }},
		{"maxSessionLifetimeSeconds becomes a duration", `{"jsonActionApiDefaults":{"maxSessionLifetimeSeconds":86400}}`,
			func(c *Config) { c.Engine.Defaults.MaxSessionLifetime = 24 * time.Hour }},
		{"names may be empty (no default)", `{"jsonActionApiDefaults":{"defaultDatabaseName":"","defaultOwnerName":""}}`,
			func(c *Config) {
				c.Engine.Defaults.Settings.DefaultDatabaseName, c.Engine.Defaults.Settings.DefaultOwnerName = "", ""
			}},
		{"retention and variant defaults are taken as written",
			`{"jsonActionApiDefaults":{"defaultRetentionPolicy":"neverPurge","defaultRetentionUnit":"day","defaultRetentionPeriod":0,"defaultVariantFormat":"binary"}}`,
			func(c *Config) {
				s := &c.Engine.Defaults.Settings
				s.DefaultRetentionPolicy, s.DefaultRetentionUnit, s.DefaultRetentionPeriod, s.DefaultVariantFormat = "neverPurge", "day", 0, "binary"
			}},
		{"passwordHash keys left out keep their defaults", `{"security":{"passwordHash":{"iterations":3}}}`,
			func(c *Config) { c.Engine.Hash.Iterations = 3 }},
		{"passwordHash at 8 KiB per lane", `{"security":{"passwordHash":{"memoryKiB":32,"iterations":1,"parallelism":4}}}`,
			func(c *Config) { c.Engine.Hash = engine.HashParams{MemoryKiB: 32, Iterations: 1, Parallelism: 4} }},
		{"maxConcurrentHashes 0 leaves the choice to the engine (one per CPU)", `{"security":{"maxConcurrentHashes":0}}`,
			func(c *Config) { c.Engine.MaxConcurrentHashes = 0 }},
		{"loginFailuresPerAddress 0 turns throttling off", `{"security":{"loginFailuresPerAddress":0}}`,
			func(c *Config) { c.Engine.LoginFailuresPerAddress = -1 }},
		{"security durations and counts",
			`{"security":{"lockoutAfterNFailedAttempts":3,"lockoutWaitMinutes":60,"loginThrottleWindowSeconds":300,"maxPreferencesPerUser":10,"maxConcurrentHashes":4}}`,
			func(c *Config) {
				c.Engine.DefaultLockoutAfter, c.Engine.DefaultLockoutWaitMinutes = 3, 60
				c.Engine.LoginThrottleWindow, c.Engine.MaxPreferencesPerUser, c.Engine.MaxConcurrentHashes = 5*time.Minute, 10, 4
			}},
		{"housekeepingIntervalSeconds 0 turns housekeeping off", `{"storage":{"housekeepingIntervalSeconds":0}}`,
			func(c *Config) { c.Engine.HousekeepingInterval = -1 }},
		{"housekeepingIntervalSeconds becomes a duration", `{"storage":{"housekeepingIntervalSeconds":5}}`,
			func(c *Config) { c.Engine.HousekeepingInterval = 5 * time.Second }},
		{"storage values",
			`{"storage":{"flushIntervalMilliseconds":250,"encryptionKeyFile":"keys/at-rest.key","redisKeyPrefix":""}}`,
			func(c *Config) {
				c.Storage = StorageConfig{FlushInterval: 250 * time.Millisecond, EncryptionKeyFile: "keys/at-rest.key"}
			}},
		{"server values",
			`{"server":{"tcpAddress":"0.0.0.0:0","httpAddress":"[::1]:8080","maxRequestBytes":4096,"maxBatchLength":10,"maxConnections":5,"maxInFlightPerConnection":2,"readIdleTimeoutSeconds":0,"writeTimeoutSeconds":7}}`,
			func(c *Config) {
				c.Server = ServerConfig{TCPAddr: "0.0.0.0:0", HTTPAddr: "[::1]:8080", MaxRequestBytes: 4096, MaxBatch: 10,
					MaxConnections: 5, MaxInFlightPerConnection: 2, ReadIdleTimeout: 0, WriteTimeout: 7 * time.Second}
			}},
		{`listener addresses "" and "off" open no listener`, `{"server":{"tcpAddress":"","httpAddress":"off"}}`,
			func(c *Config) { c.Server.TCPAddr, c.Server.HTTPAddr = "", "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultConfig()
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestParseConfigErrors checks that each kind of mistake is refused with a message naming the
// file, the position and the key.
func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"unknown key, with the likely one",
			`{"jsonActionApiDefaults": {"maxJsonApiSesions": 10}}`,
			`services.json:1:28: jsonActionApiDefaults.maxJsonApiSesions: unknown key (did you mean "maxJsonApiSessions"?)`},
		{"a NetX property without its user. prefix",
			`{"sessionKeyProperties": {"sessionPersistence": true}}`,
			`services.json:1:27: sessionKeyProperties.sessionPersistence: unknown key (did you mean "user.sessionPersistence"?)`},
		{"unknown key, nothing close",
			`{"server": {"color": "blue"}}`,
			`services.json:1:13: server.color: unknown key`},
		{"unknown section",
			"{\n  \"jsonActionApiDefault\": {}\n}",
			`services.json:2:3: jsonActionApiDefault: unknown key (did you mean "jsonActionApiDefaults"?)`},
		{"unknown key in a nested object",
			`{"jsonActionApiDefaults":{"defaultResponseOptions":{"variantFormat":"json"}}}`,
			`services.json:1:53: jsonActionApiDefaults.defaultResponseOptions.variantFormat: unknown key`},
		{"key case matters",
			`{"security":{"PasswordHash":{}}}`,
			`services.json:1:14: security.PasswordHash: unknown key (did you mean "passwordHash"?)`},
		{"nested key written dotted, as the README's table names it",
			`{"security":{"passwordHash.memoryKiB":8192}}`,
			`services.json:1:14: security.passwordHash.memoryKiB: unknown key (write it nested: "passwordHash": {"memoryKiB": …})`},
		{"a scalar key with a dot is only unknown",
			`{"server": {"maxBatchLength.max": 7}}`,
			`services.json:1:13: server.maxBatchLength.max: unknown key`},
		{"duplicate key",
			"{\"jsonActionApiDefaults\": {\n\"defaultApi\": \"hub\",\n\"defaultApi\": \"db\"\n}}",
			`services.json:3:1: jsonActionApiDefaults.defaultApi: duplicate key (first at line 2, column 1)`},
		{"duplicate section",
			`{"storage":{},"storage":{}}`,
			`services.json:1:15: storage: duplicate key (first at line 1, column 2)`},
		{"user.sessionDuration too large",
			`{"sessionKeyProperties": {"user.sessionDuration": 40000}}`,
			`services.json:1:51: sessionKeyProperties.user.sessionDuration: must be 0 (meaning 30) or 1–35791, got 40000`},
		{"user.sessionDuration negative",
			`{"sessionKeyProperties":{"user.sessionDuration":-1}}`,
			`services.json:1:49: sessionKeyProperties.user.sessionDuration: must be 0 (meaning 30) or 1–35791, got -1`},
		{"user.sessionInactivityTimeout negative",
			`{"sessionKeyProperties":{"user.sessionInactivityTimeout":-5}}`,
			`services.json:1:58: sessionKeyProperties.user.sessionInactivityTimeout: must be 0 (off) to 35791394 minutes, got -5`},
		{"NetX boolean written as a string",
			`{"sessionKeyProperties":{"user.sessionNoTickle":"true"}}`,
			`services.json:1:49: sessionKeyProperties.user.sessionNoTickle: must be true or false, got string "true"`},
		{"idle timeout negative",
			`{"jsonActionApiDefaults":{"idleConnectionTimeoutSeconds":-1}}`,
			`services.json:1:58: jsonActionApiDefaults.idleConnectionTimeoutSeconds: must be 0 (never) to 2147483647 seconds, got -1`},
		{"idle timeout beyond int32",
			`{"jsonActionApiDefaults":{"idleConnectionTimeoutSeconds":2147483648}}`,
			`services.json:1:58: jsonActionApiDefaults.idleConnectionTimeoutSeconds: must be 0 (never) to 2147483647 seconds, got 2147483648`},
		{"cursor timeout below -1",
			`{"jsonActionApiDefaults":{"idleCursorTimeoutSeconds":-2}}`,
			`services.json:1:54: jsonActionApiDefaults.idleCursorTimeoutSeconds: must be -1 (never) to 2147483647 seconds, got -2`},
		{"number beyond int64",
			`{"jsonActionApiDefaults":{"maxJsonApiSessions":99999999999999999999}}`,
			`services.json:1:48: jsonActionApiDefaults.maxJsonApiSessions: must be 0 (no limit) to 2147483647, got 99999999999999999999`},
		{"fraction",
			`{"jsonActionApiDefaults":{"maxJsonApiSessions":1.5}}`,
			`services.json:1:48: jsonActionApiDefaults.maxJsonApiSessions: must be an integer (0 (no limit) to 2147483647), got 1.5`},
		{"integer written as a string",
			`{"jsonActionApiDefaults":{"idleConnectionTimeoutSeconds":"3600"}}`,
			`services.json:1:58: jsonActionApiDefaults.idleConnectionTimeoutSeconds: must be an integer (0 (never) to 2147483647 seconds), got string "3600"`},
		{"null is not a default",
			`{"jsonActionApiDefaults":{"defaultApi":null}}`,
			`services.json:1:40: jsonActionApiDefaults.defaultApi: must be a string, got null`},
		{"boolean written as a number",
			`{"jsonActionApiDefaults":{"enablePermanentJsonApiSessions":1}}`,
			`services.json:1:60: jsonActionApiDefaults.enablePermanentJsonApiSessions: must be true or false, got 1`},
		{"section that is not an object",
			`{"server":[]}`,
			`services.json:1:11: server: must be an object {…}, got an array`},
		{"enum value",
			`{"jsonActionApiDefaults":{"defaultDebug":"verbose"}}`,
			`services.json:1:42: jsonActionApiDefaults.defaultDebug: must be "none" or "max", got "verbose"`},
		{"nested enum value",
			`{"jsonActionApiDefaults":{"defaultResponseOptions":{"dataFormat":"rows"}}}`,
			`services.json:1:66: jsonActionApiDefaults.defaultResponseOptions.dataFormat: must be "arrays" or "objects", got "rows"`},
		{"binary format",
			`{"jsonActionApiDefaults":{"defaultBinaryFormat":"base32"}}`,
			`services.json:1:49: jsonActionApiDefaults.defaultBinaryFormat: must be "hex", "base64" or "byteArray", got "base32"`},
		{"name too long",
			`{"jsonActionApiDefaults":{"defaultOwnerName":"` + strings.Repeat("x", 65) + `"}}`,
			`services.json:1:46: jsonActionApiDefaults.defaultOwnerName: must be at most 64 bytes, got 65`},
		{"name with a control character",
			`{"jsonActionApiDefaults":{"defaultDatabaseName":"a\u0007b"}}`,
			`services.json:1:49: jsonActionApiDefaults.defaultDatabaseName: must not contain control characters, got "a\ab"`},
		{"negative retention period",
			`{"jsonActionApiDefaults":{"defaultRetentionPeriod":-4}}`,
			`services.json:1:52: jsonActionApiDefaults.defaultRetentionPeriod: must be 0–2147483647, got -4`},
		{"negative lifetime",
			`{"jsonActionApiDefaults":{"maxSessionLifetimeSeconds":-1}}`,
			`services.json:1:55: jsonActionApiDefaults.maxSessionLifetimeSeconds: must be 0 (off) to 2147483647 seconds, got -1`},
		{"address without a port",
			`{"server":{"tcpAddress":"localhost"}}`,
			`services.json:1:25: server.tcpAddress: must be host:port such as "127.0.0.1:7400", or "off" for no listener; got "localhost" (missing port in address)`},
		{"address with a bad port",
			`{"server":{"httpAddress":"127.0.0.1:70000"}}`,
			`services.json:1:26: server.httpAddress: must be host:port such as "127.0.0.1:7401", or "off" for no listener; got "127.0.0.1:70000" (port "70000" is not a number from 0 to 65535)`},
		{"request limit too small",
			`{"server":{"maxRequestBytes":100}}`,
			`services.json:1:30: server.maxRequestBytes: must be 1024–1073741824 bytes, got 100`},
		{"batch of zero",
			`{"server":{"maxBatchLength":0}}`,
			`services.json:1:29: server.maxBatchLength: must be 1–10000, got 0`},
		{"argon2 memory below 8 KiB per lane",
			`{"security":{"passwordHash":{"memoryKiB":16,"parallelism":4}}}`,
			`services.json:1:42: security.passwordHash.memoryKiB: must be at least 8 KiB per lane (8×parallelism = 32), got 16`},
		{"argon2 without iterations",
			`{"security":{"passwordHash":{"iterations":0}}}`,
			`services.json:1:43: security.passwordHash.iterations: must be 1–1000, got 0`},
		{"argon2 parallelism beyond its byte",
			`{"security":{"passwordHash":{"parallelism":256}}}`,
			`services.json:1:44: security.passwordHash.parallelism: must be 1–255, got 256`},
		{"lockout of zero",
			`{"security":{"lockoutAfterNFailedAttempts":0}}`,
			`services.json:1:44: security.lockoutAfterNFailedAttempts: must be 1–1000 (accounts can turn lockout off one by one), got 0`},
		{"flush interval of zero",
			`{"storage":{"flushIntervalMilliseconds":0}}`,
			`services.json:1:41: storage.flushIntervalMilliseconds: must be 1–3600000 milliseconds, got 0`},
		{"redis prefix as a number",
			`{"storage":{"redisKeyPrefix":7}}`,
			`services.json:1:30: storage.redisKeyPrefix: must be a string, got 7`},
		{"two problems, one line each, in file order",
			"{\"server\":{\"maxBatchLength\":0},\n\"storage\":{\"nope\":1}}",
			"services.json:1:29: server.maxBatchLength: must be 1–10000, got 0\n" +
				"services.json:2:12: storage.nope: unknown key"},

		{"not an object", `[]`, `services.json:1:1: the file must hold one JSON object {…}, got an array`},
		{"empty file", " \n", `services.json:1:1: invalid JSON: the file is empty (write {} to use every default)`},
		{"trailing comma",
			"{\n\"storage\": {},\n}",
			`services.json:3:1: invalid JSON: invalid character '}' looking for beginning of object key string`},
		{"missing colon",
			"{\n\"jsonActionApiDefaults\"\n{\n}\n}",
			`services.json:3:1: invalid JSON: invalid character '{' after object key`},
		{"cut short", `{"storage": {`, `services.json:1:14: invalid JSON: unexpected end of file`},
		{"data after the object", "{}\n{}", `services.json:2:1: invalid JSON: invalid character '{' after top-level value`},
		{"the seed section unmended",
			"\"jsonActionApiDefaults\"\n{\n\"defaultApi\": \"hub\"\n},",
			`services.json:2:1: invalid JSON: invalid character '{' after top-level value`},
		{"single quotes", `{'storage': {}}`, `services.json:1:2: invalid JSON: invalid character '\'' looking for beginning of object key string`},
		{"deep nesting", `{"storage":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
			`services.json:1:75: storage[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: values nest more than 64 deep`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.file))
			if err == nil {
				t.Fatalf("accepted: %+v", cfg)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("%T is not a *ConfigError", err)
			}
			if ce.File != "services.json" || ce.Line < 1 || ce.Column < 1 {
				t.Errorf("ConfigError %+v", ce)
			}
		})
	}
}

// TestParseConfigErrorCount checks that a file full of mistakes gets a bounded report.
func TestParseConfigErrorCount(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"server":{`)
	for i := range 30 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"unknown%02d":1`, i)
	}
	b.WriteString(`}}`)
	_, err := ParseConfig([]byte(b.String()))
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxReportedProblems+1 || lines[len(lines)-1] != "services.json: … and 10 more problems" {
		t.Errorf("got %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

// TestLoadConfig checks that errors name the file given and that a relative key file is found
// next to services.json.
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	missing := filepath.Join(dir, "absent.json")
	if _, err := LoadConfig(missing); err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	bad := write("bad.json", `{"storage":{"flushIntervalMilliseconds":"1s"}}`)
	want := bad + `:1:41: storage.flushIntervalMilliseconds: must be an integer (1–3600000 milliseconds), got string "1s"`
	if _, err := LoadConfig(bad); err == nil || err.Error() != want {
		t.Errorf("bad file:\n got %v\nwant %s", err, want)
	}

	rel := write("relative.json", `{"storage":{"encryptionKeyFile":"keys/at-rest.key"}}`)
	if cfg, err := LoadConfig(rel); err != nil || cfg.Storage.EncryptionKeyFile != filepath.Join(dir, "keys/at-rest.key") {
		t.Errorf("relative key file: %+v, %v", cfg, err)
	}
	abs := write("absolute.json", `{"storage":{"encryptionKeyFile":"/etc/sessiond/key"}}`)
	if cfg, err := LoadConfig(abs); err != nil || cfg.Storage.EncryptionKeyFile != "/etc/sessiond/key" {
		t.Errorf("absolute key file: %+v, %v", cfg, err)
	}
}

// TestEngineAcceptsConfigs checks that engine.New takes the engine.Config of every shipped
// file, so a file that loads never fails later at start.
func TestEngineAcceptsConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/config/*.json")
	if len(files) < 2 {
		t.Fatalf("found only %v", files)
	}
	configs := map[string]*Config{"DefaultConfig()": DefaultConfig()}
	for _, f := range files {
		cfg, err := LoadConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		configs[f] = cfg
	}
	for name, cfg := range configs {
		eng, err := engine.New(nil, cfg.Engine) // New does not touch the store
		if err != nil {
			t.Errorf("%s: engine.New: %v", name, err)
			continue
		}
		eng.Close()
	}
}

// FuzzParseConfig checks that no input makes ParseConfig panic, that errors always point
// into the file, and that whatever it accepts is within every documented range and accepted
// by the engine.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob("../../testdata/config/*.json")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(everyKeyFile))
	for _, s := range []string{
		``, `{`, `[]`, `null`, `{}`, "\ufeff{}", `{} {}`,
		`{"a":1,"a":2}`,
		`{"jsonActionApiDefaults":{"idleConnectionTimeoutSeconds":"3600"}}`,
		`{"jsonActionApiDefaults":{"idleCursorTimeoutSeconds":-2,"defaultDebug":"max","defaultResponseOptions":{"dataFormat":"objects"}}}`,
		`{"sessionKeyProperties":{"user.sessionDuration":40000}}`,
		`{"sessionKeyProperties":{"user.sessionDuration":0,"user.sessionInactivityTimeout":0}}`,
		"\"jsonActionApiDefaults\"\n{\n\"defaultApi\": \"hub\"\n},",
		`{"security":{"passwordHash":{"memoryKiB":8,"parallelism":2}}}`,
		`{"security":{"loginFailuresPerAddress":0},"storage":{"housekeepingIntervalSeconds":0}}`,
		`{"server":{"tcpAddress":"off","httpAddress":"[::1]:0","maxRequestBytes":1e3}}`,
		`{"storage":` + strings.Repeat("[", 80) + strings.Repeat("]", 80) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		cfg2, err2 := ParseConfig(data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(cfg, cfg2) {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			if cfg != nil {
				t.Fatal("a config along with an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "services.json:") {
					t.Fatalf("error line without the file name: %q", line)
				}
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Line < 1 || ce.Column < 1 {
				t.Fatalf("error without a position: %#v", err)
			}
			return
		}
		checkConfigRanges(t, cfg)
		// Cheap hashing, so that New's one hash takes microseconds whatever the file says;
		// the real parameters were checked above.
		ec := cfg.Engine
		ec.Hash = engine.HashParams{MemoryKiB: 8, Iterations: 1, Parallelism: 1}
		ec.HousekeepingInterval = -1
		eng, err := engine.New(nil, ec)
		if err != nil {
			t.Fatalf("accepted config refused by the engine: %v", err)
		}
		eng.Close()
	})
}

// checkConfigRanges re-checks, independently of the decoder, every range ParseConfig promises.
func checkConfigRanges(t *testing.T, cfg *Config) {
	t.Helper()
	fail := func(format string, args ...any) { t.Helper(); t.Fatalf(format, args...) }
	s := cfg.Engine.Defaults.Settings
	for _, e := range []struct {
		name, v string
		allowed []string
	}{
		{"defaultDebug", s.DefaultDebug, engine.DebugValues},
		{"defaultBinaryFormat", s.DefaultBinaryFormat, engine.BinaryFormatValues},
		{"binaryFormat", s.DefaultResponseOptions.BinaryFormat, engine.BinaryFormatValues},
		{"dataFormat", s.DefaultResponseOptions.DataFormat, engine.DataFormatValues},
		{"numberFormat", s.DefaultResponseOptions.NumberFormat, engine.NumberFormatValues},
	} {
		if !slices.Contains(e.allowed, e.v) {
			fail("%s = %q", e.name, e.v)
		}
	}
	for _, name := range []string{s.DefaultAPI, s.DefaultDatabaseName, s.DefaultOwnerName, s.DefaultRetentionPolicy, s.DefaultRetentionUnit, s.DefaultVariantFormat} {
		if len(name) > engine.MaxNameBytes {
			fail("name %q too long", name)
		}
	}
	switch {
	case s.IdleConnectionTimeoutSeconds < 0 || s.IdleConnectionTimeoutSeconds > engine.MaxTimeoutSeconds:
		fail("idle %d", s.IdleConnectionTimeoutSeconds)
	case s.IdleCursorTimeoutSeconds < -1 || s.IdleCursorTimeoutSeconds > engine.MaxTimeoutSeconds:
		fail("cursor %d", s.IdleCursorTimeoutSeconds)
	case s.DefaultRetentionPeriod < 0:
		fail("retention %d", s.DefaultRetentionPeriod)
	}
	d := cfg.Engine.Defaults
	if d.Caps.MaxSessions < 0 || d.Caps.MaxSessionsPerAddress < 0 || d.Caps.MaxSessionsPerUser < 0 || d.MaxSessionLifetime < 0 {
		fail("caps %+v lifetime %v", d.Caps, d.MaxSessionLifetime)
	}
	n := cfg.Engine.NetX
	if n.SessionDurationMinutes < 1 || n.SessionDurationMinutes > 35791 || n.InactivityTimeoutMinutes < 0 {
		fail("netx %+v", n)
	}
	e := cfg.Engine
	switch {
	case e.Hash.Iterations < 1 || e.Hash.Parallelism < 1 || e.Hash.MemoryKiB < 8*uint32(e.Hash.Parallelism) || e.Hash.MemoryKiB > 4<<20:
		fail("hash %+v", e.Hash)
	case e.MaxConcurrentHashes < 0:
		fail("maxConcurrentHashes %d", e.MaxConcurrentHashes)
	case e.DefaultLockoutAfter < 1 || e.DefaultLockoutAfter > 1000 || e.DefaultLockoutWaitMinutes < 1 || e.DefaultLockoutWaitMinutes > 525600:
		fail("lockout %d/%d", e.DefaultLockoutAfter, e.DefaultLockoutWaitMinutes)
	case e.LoginFailuresPerAddress == 0 || e.LoginFailuresPerAddress < -1 || e.LoginThrottleWindow <= 0:
		fail("throttle %d/%v", e.LoginFailuresPerAddress, e.LoginThrottleWindow)
	case e.MaxPreferencesPerUser < 1:
		fail("preferences %d", e.MaxPreferencesPerUser)
	case e.HousekeepingInterval == 0 || (e.HousekeepingInterval < 0 && e.HousekeepingInterval != -1):
		fail("housekeeping %v", e.HousekeepingInterval)
	}
	sv := cfg.Server
	for _, a := range []string{sv.TCPAddr, sv.HTTPAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			fail("address %q: %v", a, err)
		}
	}
	if sv.MaxRequestBytes < 1024 || sv.MaxBatch < 1 || sv.MaxConnections < 1 || sv.MaxInFlightPerConnection < 1 || sv.ReadIdleTimeout < 0 || sv.WriteTimeout < 0 {
		fail("server %+v", sv)
	}
	if cfg.Storage.FlushInterval <= 0 || len(cfg.Storage.RedisKeyPrefix) > 256 || strings.Contains(cfg.Storage.EncryptionKeyFile, "\x00") {
		fail("storage %+v", cfg.Storage)
	}
}

// TestRPCOptionsTimeouts checks the "server" section's timeouts as the transports get them:
// 0 is never (rpc.Options' negative; its 0 would be the default), others as they are.
func TestRPCOptionsTimeouts(t *testing.T) {
	for _, tc := range []struct {
		file            string
		readIdle, write time.Duration
	}{
		{`{}`, 5 * time.Minute, 30 * time.Second},
		{`{"server":{"readIdleTimeoutSeconds":0,"writeTimeoutSeconds":0}}`, -1, -1},
		{`{"server":{"readIdleTimeoutSeconds":7,"writeTimeoutSeconds":0}}`, 7 * time.Second, -1},
	} {
		c, err := ParseConfig([]byte(tc.file))
		if err != nil {
			t.Fatal(err)
		}
		o := rpcOptions(c.Server, nil)
		if o.ReadIdleTimeout != tc.readIdle || o.WriteTimeout != tc.write {
			t.Errorf("%s: read idle %v, write %v; want %v, %v", tc.file, o.ReadIdleTimeout, o.WriteTimeout, tc.readIdle, tc.write)
		}
	}
}

// TestEncryptionKeyForms checks that a key is the same whichever way it is written: base64 in
// SESSIOND_ENCRYPTION_KEY or in the file (with or without a final newline, even when the text
// of a 16-byte key is itself 24 bytes long), or raw bytes in the file, those that are valid
// base64 too included.
func TestEncryptionKeyForms(t *testing.T) {
	k16 := []byte("0123456789abcdef")
	b16 := base64.StdEncoding.EncodeToString(k16) // 24 characters
	raw32 := make([]byte, 32)
	for i := range raw32 {
		raw32[i] = byte(i * 7) // not base64 text
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, env string
		file      []byte
		want      []byte
		fails     bool
	}{
		{"environment", b16, nil, k16, false},
		{"environment over the file", b16, raw32, k16, false},
		{"base64 file without a newline", "", []byte(b16), k16, false},
		{"base64 file with a newline", "", []byte(b16 + "\n"), k16, false},
		{"raw file", "", raw32, raw32, false},
		// A raw 24-byte key that only happens to end in "==" is no base64.
		{"raw 24-byte file ending in ==", "", []byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15=="),
			[]byte("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15=="), false},
		// 32 hex digits are valid base64 (of 24 bytes), and were always a raw 32-byte key.
		{"raw hex file", "", []byte("0123456789abcdef0123456789abcdef"), []byte("0123456789abcdef0123456789abcdef"), false},
		{"neither", "", []byte("short"), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SESSIOND_ENCRYPTION_KEY", tc.env)
			file := ""
			if tc.file != nil {
				file = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
				if err := os.WriteFile(file, tc.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			key, err := encryptionKey(file)
			if tc.fails != (err != nil) || !bytes.Equal(key, tc.want) {
				t.Errorf("key %x, %v; want %x (fails %v)", key, err, tc.want, tc.fails)
			}
		})
	}
}

// Enum settings ignore case, as createSession does, and keep the spelling of the list.
func TestParseConfigEnumsIgnoreCase(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"jsonActionApiDefaults":{"defaultDebug":"MAX","defaultBinaryFormat":"Base64","defaultResponseOptions":{"dataFormat":"Objects"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Engine.Defaults.Settings
	if s.DefaultDebug != "max" || s.DefaultBinaryFormat != "base64" || s.DefaultResponseOptions.DataFormat != "objects" {
		t.Errorf("got %q, %q, %q; want max, base64, objects", s.DefaultDebug, s.DefaultBinaryFormat, s.DefaultResponseOptions.DataFormat)
	}
}

// A key file others than its owner can read is named in a warning; one only its owner can, not.
func TestWarnOpenKeyFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	t.Setenv("SESSIOND_ENCRYPTION_KEY", "")
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o644, true}} {
		file := filepath.Join(t.TempDir(), "key.bin")
		if err := os.WriteFile(file, make([]byte, 32), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, tc.mode); err != nil { // past the umask
			t.Fatal(err)
		}
		var logs bytes.Buffer
		warnOpenKeyFile(file, slog.New(slog.NewTextHandler(&logs, nil)))
		if warned := strings.Contains(logs.String(), "chmod 600"); warned != tc.warn {
			t.Errorf("mode %v: warned %v, want %v: %q", tc.mode, warned, tc.warn, logs.String())
		}
	}
}
