package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findRoot(cwd)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestGeneratedFilesUpToDate regenerates the SDKs in memory and fails if a generated file in
// sdk/ is stale, missing or extra: run `go generate ./...` after schemas/openrpc.json changes.
func TestGeneratedFilesUpToDate(t *testing.T) {
	root := repoRoot(t)
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := compare(root, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("generated SDK files are out of date; run `go generate ./...`:\n\t%s", strings.Join(problems, "\n\t"))
	}
}

// TestGenerateIsDeterministic checks that two runs produce the same bytes.
func TestGenerateIsDeterministic(t *testing.T) {
	root := repoRoot(t)
	first, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	second, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(second) {
		t.Fatalf("%d files, then %d", len(first), len(second))
	}
	for name, content := range first {
		if !bytes.Equal(content, second[name]) {
			t.Errorf("%s differs between two runs", name)
		}
		if first, _, _ := bytes.Cut(content, []byte("\n")); !bytes.Contains(first, []byte(generatedBy)) {
			t.Errorf("%s does not begin with the generated line: %q", name, first)
		}
	}
}

// TestCompareAndWrite checks -check's report of stale, missing and extra files, and that
// writing fixes them without touching hand-written files.
func TestCompareAndWrite(t *testing.T) {
	root := t.TempDir()
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), openrpcPath))
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, openrpcPath), doc)
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	if problems, _ := compare(root, files); len(problems) != len(files) {
		t.Errorf("an empty tree has %d problems; want %d, one missing file each", len(problems), len(files))
	}
	if err := write(root, files); err != nil {
		t.Fatal(err)
	}
	if problems, _ := compare(root, files); len(problems) > 0 {
		t.Fatalf("after write: %v", problems)
	}

	mustWrite(t, filepath.Join(root, "sdk/go/session.go"), []byte("// "+generatedBy+"\n\npackage sessiond\n"))
	if err := os.Remove(filepath.Join(root, "sdk/python/sessiond/errors.py")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "sdk/typescript/src/gone.ts"), []byte("// "+generatedBy+"\n"))
	mustWrite(t, filepath.Join(root, "sdk/typescript/src/handwritten.ts"), []byte("export {};\n"))
	problems, err := compare(root, files)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"sdk/go/session.go: stale",
		"sdk/python/sessiond/errors.py: missing",
		"sdk/typescript/src/gone.ts: extra (generated, but gensdk no longer makes it)",
	}
	if !slices.Equal(problems, want) {
		t.Errorf("problems:\n\t%s\nwant:\n\t%s", strings.Join(problems, "\n\t"), strings.Join(want, "\n\t"))
	}
	if err := write(root, files); err != nil {
		t.Fatal(err)
	}
	if problems, _ := compare(root, files); len(problems) > 0 {
		t.Errorf("after the second write: %v", problems)
	}
	if _, err := os.Stat(filepath.Join(root, "sdk/typescript/src/handwritten.ts")); err != nil {
		t.Errorf("write removed a hand-written file: %v", err)
	}

	mustWrite(t, filepath.Join(root, "sdk/go/types.go"), []byte("package sessiond\n"))
	if err := write(root, files); err == nil || !strings.Contains(err.Error(), "hand-written") {
		t.Errorf("write over a hand-written file: %v; want a refusal", err)
	}
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestNames checks how wire names become identifiers in each language.
func TestNames(t *testing.T) {
	for _, tc := range []struct{ wire, goName, snake, constant string }{
		{"sessionIds", "SessionIDs", "session_ids", "SESSION_IDS"},
		{"hostIpAddresses", "HostIPAddresses", "host_ip_addresses", "HOST_IP_ADDRESSES"},
		{"defaultApi", "DefaultAPI", "default_api", "DEFAULT_API"},
		{"hostUuid", "HostUUID", "host_uuid", "HOST_UUID"},
		{"lockoutAfterNFailedAttempts", "LockoutAfterNFailedAttempts", "lockout_after_n_failed_attempts", "LOCKOUT_AFTER_N_FAILED_ATTEMPTS"},
		{"openrpc", "OpenRPC", "openrpc", "OPENRPC"},
		{"invalidAuthToken", "InvalidAuthToken", "invalid_auth_token", "INVALID_AUTH_TOKEN"},
		{"from", "From", "from_", "FROM"},
	} {
		if got := goName(tc.wire); got != tc.goName {
			t.Errorf("goName(%q) = %q; want %q", tc.wire, got, tc.goName)
		}
		if got := snakeName(tc.wire); got != tc.snake {
			t.Errorf("snakeName(%q) = %q; want %q", tc.wire, got, tc.snake)
		}
		if got := constName(tc.wire); got != tc.constant {
			t.Errorf("constName(%q) = %q; want %q", tc.wire, got, tc.constant)
		}
	}
	for wire, want := range map[string]string{"rpc.discover": "discover", "createSession": "createSession", "a.b.c": "aBC"} {
		if got := methodIdent(wire); got != want {
			t.Errorf("methodIdent(%q) = %q; want %q", wire, got, want)
		}
	}
}

// TestUnsupportedSchemas checks that a schema the generator cannot type faithfully is an
// error, not a silently wrong type.
func TestUnsupportedSchemas(t *testing.T) {
	method := func(schema string) string {
		return `{"openrpc":"1.3.2","info":{"title":"t","version":"1"},"methods":[{"name":"m","tags":[{"name":"x"}],
			"params":[{"name":"p","required":true,"schema":` + schema + `}],"result":{"name":"r","schema":{"type":"boolean"}}}],
			"components":{"schemas":{},"errors":{}}}`
	}
	for name, schema := range map[string]string{
		"allOf":          `{"allOf":[{"type":"string"}]}`,
		"prefixItems":    `{"type":"array","prefixItems":[{"type":"string"}]}`,
		"numeric enum":   `{"type":"integer","enum":[1,2]}`,
		"two types":      `{"type":["string","integer"]}`,
		"external $ref":  `{"$ref":"other.json#/x"}`,
		"unknown $ref":   `{"$ref":"#/components/schemas/Nope"}`,
		"array no items": `{"type":"array"}`,
		"const":          `{"const":"x"}`,
	} {
		doc, err := readDocument([]byte(method(schema)))
		if err == nil {
			_, err = buildAPI(doc)
		}
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	doc, err := readDocument([]byte(method(`{"type":["string","null"],"format":"date-time"}`)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := buildAPI(doc)
	if err != nil {
		t.Fatalf("a supported schema: %v", err)
	}
	if p := a.Methods[0].Params[0].Type; p.Kind != kindTime || !p.Nullable {
		t.Errorf("nullable date-time became %+v", p)
	}
}

// TestGoOptionalToken checks that a Go method of optional token always sends it and gets a
// companion that sends none, and that a second param, which the companion could not take, is
// an error.
func TestGoOptionalToken(t *testing.T) {
	document := func(params string) string {
		return `{"openrpc":"1.3.2","info":{"title":"t","version":"1"},"methods":[{"name":"pingThing","tags":[{"name":"x"}],
			"x-auth":"optionalToken","x-token-field":"authToken","params":[` + params + `],
			"result":{"name":"r","schema":{"type":"object","properties":{}}}}],"components":{"schemas":{},"errors":{}}}`
	}
	render := func(params string) (map[string][]byte, error) {
		doc, err := readDocument([]byte(document(params)))
		if err != nil {
			t.Fatal(err)
		}
		a, err := buildAPI(doc)
		if err != nil {
			t.Fatal(err)
		}
		return renderGo(a)
	}
	token := `{"name":"authToken","schema":{"type":"string"}}`
	files, err := render(token)
	if err != nil {
		t.Fatal(err)
	}
	src := string(files[goDir+"/x.go"])
	for _, want := range []string{"AuthToken string `json:\"authToken\"`",
		"func (c *Client) PingThingWithoutToken(ctx context.Context) (",
		`c.Call(ctx, "pingThing", struct{}{}, &result)`} {
		if !strings.Contains(src, want) {
			t.Errorf("x.go lacks %s:\n%s", want, src)
		}
	}
	if _, err := render(token + `,{"name":"other","schema":{"type":"string"}}`); err == nil {
		t.Error("an optional token with another param: no error")
	}
}
