package main

// TestNoSecretsAtRest checks that no token, password or encoding of a token's bytes reaches
// any file of the data directory or the debug logs, after a clean stop and after SIGKILL;
// TestErrorsDoNotEchoSecrets that no error reply repeats a secret from its request; and
// TestEncryptionAtRest that an encrypted store shows nothing in clear, refuses a wrong or
// missing key at start with a clear message, and opens intact with the right key.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secretSet is every secret a test handed out or sent, with the byte forms to look for.
type secretSet struct {
	needles []needle
}

// needle is one byte form of a secret that must not appear, and how to name it in a failure
// (never the secret itself).
type needle struct {
	what  string
	bytes []byte
}

func newSecretSet() *secretSet { return &secretSet{} }

// password records a password and its hex and base64 forms.
func (s *secretSet) password(p string) {
	s.add("password "+p[:4]+"…", []byte(p))
	s.add("hex of password "+p[:4]+"…", []byte(hex.EncodeToString([]byte(p))))
	s.add("base64 of password "+p[:4]+"…", []byte(base64.StdEncoding.EncodeToString([]byte(p))))
}

// token records a token, its body, its raw bytes (random part and checksum) and their hex and
// base64 forms.
func (s *secretSet) token(tok string) {
	name := tok[:8] + "…"
	s.add("token "+name, []byte(tok))
	body := tok[4:]
	s.add("token body "+name, []byte(body))
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) != 36 {
		panic(fmt.Sprintf("not a token: %q", tok))
	}
	random := raw[:32]
	s.add("raw token bytes "+name, raw)
	s.add("raw random bytes "+name, random)
	for form, enc := range map[string]string{
		"hex":          hex.EncodeToString(random),
		"HEX":          strings.ToUpper(hex.EncodeToString(random)),
		"base64":       base64.StdEncoding.EncodeToString(random),
		"base64 (raw)": base64.RawStdEncoding.EncodeToString(random),
		"base64url":    base64.RawURLEncoding.EncodeToString(random),
		"base64 all":   base64.StdEncoding.EncodeToString(raw),
		"hex all":      hex.EncodeToString(raw),
		"hex string":   hex.EncodeToString([]byte(tok)),
		"b64 string":   base64.StdEncoding.EncodeToString([]byte(tok)),
	} {
		s.add(form+" of token "+name, []byte(enc))
	}
}

func (s *secretSet) add(what string, b []byte) { s.needles = append(s.needles, needle{what, b}) }

// findIn returns what of the secrets occurs in data.
func (s *secretSet) findIn(data []byte) []string {
	var found []string
	for _, n := range s.needles {
		if bytes.Contains(data, n.bytes) {
			found = append(found, n.what)
		}
	}
	return found
}

// scanDir reads every file under dir, raw, and reports the secrets found in each.
func scanDir(t *testing.T, dir string, s *secretSet) (files int, bytesRead int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		bytesRead += int64(len(data))
		data = trimZeros(data) // Badger preallocates its logs with zeros
		for _, what := range s.findIn(data) {
			t.Errorf("%s found in %s", what, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, bytesRead
}

// countIn returns how many of the secrets occur in the files under dir.
func countIn(t *testing.T, dir string, s *secretSet) int {
	t.Helper()
	found := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		found += len(s.findIn(trimZeros(data)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// trimZeros drops trailing zero bytes, a block at a time (a byte loop is slow under -race).
func trimZeros(b []byte) []byte {
	zero := make([]byte, 64<<10)
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[len(b)-n:], zero[:n]) {
			break
		}
		b = b[:len(b)-n]
	}
	return bytes.TrimRight(b, "\x00")
}

// secretString makes a distinctive secret that cannot occur by chance.
func secretString(t *testing.T, label string) string {
	t.Helper()
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return label + "-" + base64.RawURLEncoding.EncodeToString(b[:])
}

// secretsWorkload logs in, creates accounts, API keys and NetX keys, changes passwords and
// fails logins, recording every secret involved.
func secretsWorkload(t *testing.T, c *lineClient, s *secretSet, run string) {
	t.Helper()
	var admin sessionResult
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &admin)
	s.token(admin.AuthToken)
	for i := range 3 {
		user := fmt.Sprintf("%s-user%d", run, i)
		pw := secretString(t, "pw")
		s.password(pw)
		c.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": user, "password": pw}, nil)
		var sess, key sessionResult
		c.mustCall("createSession", map[string]any{"username": user, "password": pw}, &sess)
		c.mustCall("createSession", map[string]any{"username": user, "password": pw, "permanentSession": true, "description": "api key"}, &key)
		var netx string
		c.mustCall("authenticate", []string{user, pw}, &netx)
		var stored bool
		c.mustCall("setUserPreference", []any{netx, map[string]string{"label": "theme", "value": "dark"}}, &stored)
		s.token(sess.AuthToken)
		s.token(key.AuthToken)
		s.token(netx)

		// A password change by the account itself, then a reset by the admin.
		changed := secretString(t, "pw2")
		s.password(changed)
		c.mustCall("alterAccount", map[string]any{"authToken": sess.AuthToken, "username": user, "password": changed, "currentPassword": pw}, nil)
		reset := secretString(t, "pw3")
		s.password(reset)
		c.mustCall("alterAccount", map[string]any{"authToken": admin.AuthToken, "username": user, "password": reset}, nil)
		var after sessionResult
		c.mustCall("createSession", map[string]any{"username": user, "password": reset}, &after)
		s.token(after.AuthToken)

		wrong := secretString(t, "wrong")
		s.password(wrong)
		if rep := c.call("createSession", map[string]any{"username": user, "password": wrong}); rep.Error == nil || rep.Error.Code != 450 {
			t.Fatalf("wrong password: %+v", rep)
		}
	}
	// A deleted session and a revoked API key: their tokens must not linger either.
	var gone, revoked sessionResult
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &gone)
	c.mustCall("deleteSession", map[string]any{"authToken": gone.AuthToken}, nil)
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword, "permanentSession": true}, &revoked)
	c.mustCall("revokeSessions", map[string]any{"authToken": admin.AuthToken, "sessionIds": []string{revoked.SessionID}}, nil)
	s.token(gone.AuthToken)
	s.token(revoked.AuthToken)
}

func TestNoSecretsAtRest(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data", dir, "--tcp", "127.0.0.1:0", "--http", "off", "--log-level", "debug"}
	secrets := newSecretSet()
	secrets.password(testAdminPassword)

	// A run that ends cleanly.
	p := startServer(t, args...)
	secretsWorkload(t, dialLine(t, p.tcpAddr), secrets, "clean")
	if code := p.terminate(); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	logs := p.logs.String()

	// A run that crashes.
	p = startServer(t, args...)
	secretsWorkload(t, dialLine(t, p.tcpAddr), secrets, "crash")
	time.Sleep(300 * time.Millisecond) // let the background flush write last-use times
	p.kill()
	logs += p.logs.String()

	files, n := scanDir(t, dir, secrets)
	if files == 0 || n == 0 {
		t.Fatalf("nothing to scan in %s", dir)
	}
	for _, what := range secrets.findIn([]byte(logs)) {
		t.Errorf("%s found in the debug logs", what)
	}
	// The scan is not vacuous: the data directory does hold the accounts it was given.
	users := newSecretSet()
	users.add("a username", []byte("crash-user1"))
	if countIn(t, dir, users) == 0 {
		t.Errorf("the data directory does not hold the usernames: the scan proves nothing")
	}
	t.Logf("scanned %d files (%d bytes) and %d bytes of logs for %d secret forms", files, n, len(logs), len(secrets.needles))
}

// TestErrorsDoNotEchoSecrets sends requests that fail while carrying a password or a token,
// over TCP and HTTP, and checks the error replies do not repeat them.
func TestErrorsDoNotEchoSecrets(t *testing.T) {
	p := startServer(t, "--in-memory", "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0")
	c := dialLine(t, p.tcpAddr)
	var admin, user sessionResult
	c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &admin)
	userPW := secretString(t, "userpw")
	c.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "user", "password": userPW}, nil)
	c.mustCall("createSession", map[string]any{"username": "user", "password": userPW}, &user)
	var revoked sessionResult
	c.mustCall("createSession", map[string]any{"username": "user", "password": userPW}, &revoked)
	c.mustCall("deleteSession", map[string]any{"authToken": revoked.AuthToken}, nil)

	secret := secretString(t, "s3cret")
	long := strings.Repeat(secret, 300/len(secret)+1) // over the 256-byte password limit
	flipped := user.AuthToken[:len(user.AuthToken)-2] + "zz"
	frame := func(method string, params any) string {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
		return string(b)
	}
	cases := []struct {
		name    string
		frame   string
		secrets []string
		code    int // 0: a result, which must not echo either
	}{
		{"wrong password", frame("createSession", map[string]any{"username": "user", "password": secret}), []string{secret}, 450},
		{"unknown user", frame("createSession", map[string]any{"username": "nobody", "password": secret}), []string{secret}, 450},
		{"password too long", frame("createSession", map[string]any{"username": "user", "password": long}), []string{secret}, -32602},
		{"password of the wrong type", frame("createSession", map[string]any{"username": "user", "password": map[string]string{"p": secret}}), []string{secret}, -32602},
		{"password under a misspelt name", frame("createSession", map[string]any{"username": "user", "passwrod": secret, "password": "x"}), []string{secret}, -32602},
		{"a token where none is taken", frame("createSession", map[string]any{"username": "user", "password": userPW, "authToken": user.AuthToken}), []string{user.AuthToken, userPW}, -32602},
		{"wrong currentPassword", frame("alterAccount", map[string]any{"authToken": user.AuthToken, "username": "user", "password": secret, "currentPassword": userPW + "x"}), []string{secret, userPW, user.AuthToken}, 1007},
		{"new password too long", frame("alterAccount", map[string]any{"authToken": user.AuthToken, "username": "user", "password": long, "currentPassword": userPW}), []string{secret, userPW, user.AuthToken}, -32602},
		{"non-admin creates an account", frame("createAccount", map[string]any{"authToken": user.AuthToken, "username": "x", "password": secret}), []string{secret, user.AuthToken}, 1003},
		{"bad username with a password", frame("createAccount", map[string]any{"authToken": admin.AuthToken, "username": "", "password": secret}), []string{secret, admin.AuthToken}, -32602},
		{"deleted session's token", frame("pingSession", map[string]any{"authToken": revoked.AuthToken}), []string{revoked.AuthToken}, 12031},
		{"token with a bad checksum", frame("describeSessions", map[string]any{"authToken": flipped}), []string{flipped}, 12031},
		{"secret as a token", frame("alterSession", map[string]any{"authToken": secret}), []string{secret}, 12031},
		{"token of the wrong type", frame("deleteSession", map[string]any{"authToken": []string{user.AuthToken}}), []string{user.AuthToken}, -32602},
		{"NetX wrong password", frame("authenticate", []string{"user", secret}), []string{secret}, 0},
		{"NetX bad key", frame("setUserPreference", []any{secret, map[string]string{"label": "a", "value": "b"}}), []string{secret}, 0},
		{"NetX bad key, get", frame("getUserPreference", []any{flipped, "a"}), []string{flipped}, 12031},
		{"unknown method", frame("createSessions", map[string]any{"username": "user", "password": secret}), []string{secret}, -32601},
		{"parse error", `{"jsonrpc":"2.0","method":"createSession","params":{"username":"user","password":"` + secret + `"},"id":1`, []string{secret}, -32700},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"method\":\"createSession\",\"params\":{\"username\":\"\xff\",\"password\":\"" + secret + "\"},\"id\":1}", []string{secret}, -32700},
		{"duplicate member", `{"jsonrpc":"2.0","method":"createSession","params":{"username":"user","password":"` + secret + `"},"params":{},"id":1}`, []string{secret}, -32600},
		{"bad version", `{"jsonrpc":"1.0","method":"pingSession","params":{"authToken":"` + user.AuthToken + `"},"id":1}`, []string{user.AuthToken}, -32600},
	}
	raw, err := net.Dial("tcp", p.tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	lt := &lineTransport{w: raw, r: bufio.NewReader(raw)}
	for _, tc := range cases {
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		tcpReply, err := lt.roundTrip(tc.frame, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		httpReply := postJSON(t, "http://"+p.httpAddr+"/", tc.frame, "")
		for transport, reply := range map[string]string{"tcp": tcpReply, "http": httpReply} {
			var rep rpcReply
			if err := json.Unmarshal([]byte(reply), &rep); err != nil {
				t.Fatalf("%s over %s: reply %q", tc.name, transport, reply)
			}
			if rep.errorCode() != tc.code {
				t.Errorf("%s over %s: %v, want code %d", tc.name, transport, rep, tc.code)
			}
			for _, s := range tc.secrets {
				if strings.Contains(reply, s) {
					t.Errorf("%s over %s: the reply repeats a secret from the request: %s", tc.name, transport, reply)
				}
			}
		}
	}
	// A Bearer token that is no good is not repeated either.
	reply := postJSON(t, "http://"+p.httpAddr+"/", `{"jsonrpc":"2.0","method":"listSessions","id":1}`, flipped)
	if !strings.Contains(reply, "12031") || strings.Contains(reply, flipped) {
		t.Errorf("bad bearer token: %s", reply)
	}
}

// postJSON posts a body to the HTTP transport and returns the reply body.
func postJSON(t *testing.T, url, body, bearer string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// runToExit runs the binary, expecting it to stop by itself within 20 s, and returns its exit
// code, its stderr and how long it ran.
func runToExit(t *testing.T, env []string, args ...string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after 20 s; stderr:\n%s", args, stderr.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return code, stderr.String(), took
}

// environ returns the test's environment without the encryption key, plus extra.
func environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_ENCRYPTION_KEY=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "SESSIOND_ADMIN_PASSWORD="+testAdminPassword), extra...)
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return key
}

func TestEncryptionAtRest(t *testing.T) {
	key := randomKey(t)
	encrypted, plain := t.TempDir(), t.TempDir()
	description := secretString(t, "distinctive account description")
	sessionNote := secretString(t, "distinctive session description")
	username := strings.ToLower(secretString(t, "cipheruser"))

	fill := func(dir string) (token string) {
		p := startServer(t, "--data", dir, "--tcp", "127.0.0.1:0", "--http", "off")
		c := dialLine(t, p.tcpAddr)
		var admin, s sessionResult
		c.mustCall("createSession", map[string]any{"username": "admin", "password": testAdminPassword}, &admin)
		c.mustCall("createAccount", map[string]any{"authToken": admin.AuthToken, "username": username, "password": "pw", "accountDescription": description}, nil)
		c.mustCall("createSession", map[string]any{"username": username, "password": "pw", "permanentSession": true, "description": sessionNote}, &s)
		if code := p.terminate(); code != 0 {
			t.Fatalf("SIGTERM: exit code %d", code)
		}
		return s.AuthToken
	}
	clear := newSecretSet()
	for _, s := range []string{description, sessionNote, username} {
		clear.add(s, []byte(s))
	}

	// Without a key the data is in the files as it was given: the scan can see it.
	fill(plain)
	if countIn(t, plain, clear) == 0 {
		t.Fatal("an unencrypted store does not show the description either: the scan proves nothing")
	}

	// With a key, nothing readable reaches the disk.
	t.Setenv("SESSIOND_ENCRYPTION_KEY", base64.StdEncoding.EncodeToString(key))
	token := fill(encrypted)
	scanDir(t, encrypted, clear)
	os.Unsetenv("SESSIOND_ENCRYPTION_KEY")

	serve := []string{"serve", "--config", testConfigPath, "--data", encrypted, "--tcp", "127.0.0.1:0", "--http", "off"}
	refusals := []struct {
		name   string
		env    []string
		phrase string
	}{
		{"another key", environ("SESSIOND_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(randomKey(t))), "wrong encryption key"},
		{"a shorter key", environ("SESSIOND_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(key[:16])), "wrong encryption key"},
		{"no key", environ(), "encrypted and no key was given"},
		{"a key that is not base64", environ("SESSIOND_ENCRYPTION_KEY=not base64!"), "must be 16, 24 or 32 bytes"},
	}
	for _, r := range refusals {
		code, stderr, took := runToExit(t, r.env, serve...)
		if code == 0 || !strings.Contains(stderr, r.phrase) {
			t.Errorf("start with %s: exit code %d, stderr %q; want non-zero and %q", r.name, code, stderr, r.phrase)
		}
		if took > 10*time.Second {
			t.Errorf("start with %s took %v to fail", r.name, took)
		}
		if strings.Contains(stderr, base64.StdEncoding.EncodeToString(key)) {
			t.Errorf("start with %s: stderr shows the key", r.name)
		}
	}

	// The right key, this time from a key file named in services.json: everything is there.
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "key.bin"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(testConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(base, &cfg); err != nil {
		t.Fatal(err)
	}
	storage, _ := cfg["storage"].(map[string]any)
	if storage == nil {
		storage = map[string]any{}
	}
	storage["encryptionKeyFile"] = "key.bin"
	cfg["storage"] = storage
	cfgFile := filepath.Join(cfgDir, "services.json")
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServer(t, "--config", cfgFile, "--data", encrypted, "--tcp", "127.0.0.1:0", "--http", "off")
	c := dialLine(t, p.tcpAddr)
	c.mustCall("pingSession", map[string]any{"authToken": token}, nil)
	var described struct {
		Accounts []struct {
			AccountDescription string `json:"accountDescription"`
		}
	}
	c.mustCall("describeAccounts", map[string]any{"authToken": token}, &described)
	if len(described.Accounts) != 1 || described.Accounts[0].AccountDescription != description {
		t.Errorf("after reopening with the right key: %+v", described)
	}
	var sessions struct{ Sessions []sessionResult }
	c.mustCall("describeSessions", map[string]any{"authToken": token}, &sessions)
	if len(sessions.Sessions) != 1 || sessions.Sessions[0].Description != sessionNote || !sessions.Sessions[0].PermanentSession {
		t.Errorf("the API key after reopening: %+v", sessions.Sessions)
	}
	if code := p.terminate(); code != 0 {
		t.Errorf("SIGTERM: exit code %d", code)
	}
}
