package main

import (
	"bytes"
	"maps"
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

// extendsDocument is a document whose component Derived extends Base (x-extends), its members
// given by derived: Base has a required name and an optional token.
func extendsDocument(derived string) string {
	return `{"openrpc":"1.3.2","info":{"title":"t","version":"1"},"methods":[{"name":"m","tags":[{"name":"x"}],
		"params":[],"result":{"name":"r","schema":{"$ref":"#/components/schemas/Derived"}}}],
		"components":{"errors":{},"schemas":{
		"Base":{"type":"object","additionalProperties":false,"required":["name"],"properties":{
			"token":{"type":"string","description":"token is there at times."},
			"name":{"type":"string","maxLength":9,"description":"name names it."}}},
		"Derived":` + derived + `}}}`
}

// TestExtends checks that a component extending another (x-extends) becomes a type derived
// from the base in each SDK, declaring only what it adds: a new member, and a base member it
// makes required.
func TestExtends(t *testing.T) {
	doc, err := readDocument([]byte(extendsDocument(`{"type":"object","additionalProperties":false,
		"x-extends":"#/components/schemas/Base","required":["token","name","count"],"description":"Derived has it all.","properties":{
		"token":{"type":"string","description":"token is always there."},
		"name":{"type":"string","maxLength":9,"description":"name names it."},
		"count":{"type":"integer","description":"count is more."}}}`)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := buildAPI(doc)
	if err != nil {
		t.Fatal(err)
	}
	var files = map[string][]byte{}
	for _, render := range []func(*api) (map[string][]byte, error){renderGo, renderTypeScript, renderPython} {
		out, err := render(a)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(files, out)
	}
	for file, want := range map[string]string{
		goDir + "/types.go": "type Derived struct {\n\t// Count is more.\n\tCount int `json:\"count\"`\n" +
			"\t// Base.Token is always set here: always there.\n\tBase\n}",
		tsDir + "/types.ts": "export interface Derived extends Base {\n  /** token is always there. */\n  token: string;\n" +
			"  /** count is more. */\n  count: number;\n}",
		pyDir + "/models.py": "class Derived(Base):\n    \"\"\"Derived has it all.\"\"\"\n\n    token: str = field()\n" +
			"    \"\"\"token is always there.\"\"\"\n    count: int\n    \"\"\"count is more.\"\"\"\n\n",
	} {
		if !strings.Contains(string(files[file]), want) {
			t.Errorf("%s lacks\n%s\nin\n%s", file, want, files[file])
		}
	}
	py := string(files[pyDir+"/models.py"])
	if strings.Index(py, "class Base:") > strings.Index(py, "class Derived(Base):") {
		t.Error("models.py defines Derived before its base")
	}
	// Derived reads and writes every member: the base's through the base's from_wire and
	// to_wire, its own (token, made required; count) itself.
	for _, want := range []string{
		`**vars(Base.from_wire(data)),`, `"token": data["token"],`, `"count": data["count"],`,
		`data = super().to_wire()`, `data["token"] = self.token`, `data["count"] = self.count`,
	} {
		if !strings.Contains(py[strings.Index(py, "class Derived"):], want) {
			t.Errorf("Derived's from_wire or to_wire lacks %s:\n%s", want, py)
		}
	}
}

// TestExtendsMismatch checks that a component whose x-extends does not hold, a base member
// missing or changed, is an error naming the member, not a derived type that lies.
func TestExtendsMismatch(t *testing.T) {
	const closed = `"type":"object","additionalProperties":false,`
	const token = `"token":{"type":"string"}`
	const name = `"name":{"type":"string","maxLength":9}`
	for what, tc := range map[string]struct{ derived, want string }{
		"missing member": {`{` + closed + `"x-extends":"#/components/schemas/Base","required":["name"],"properties":{` + name + `}}`,
			"the base's member token is missing"},
		"another type": {`{` + closed + `"x-extends":"#/components/schemas/Base","required":["name"],"properties":{"token":{"type":"integer"},` + name + `}}`,
			"member token: its schema differs from the base's"},
		"another limit": {`{` + closed + `"x-extends":"#/components/schemas/Base","required":["name"],"properties":{` + token + `,"name":{"type":"string"}}}`,
			"member name: its schema differs from the base's"},
		"optional here": {`{` + closed + `"x-extends":"#/components/schemas/Base","properties":{` + token + `,` + name + `}}`,
			"member name: optional, but required in the base"},
		"open": {`{"type":"object","x-extends":"#/components/schemas/Base","required":["name"],"properties":{` + token + `,` + name + `}}`,
			"must both be closed objects"},
		"not a component": {`{` + closed + `"x-extends":"#/$defs/Base","required":["name"],"properties":{` + token + `,` + name + `}}`,
			"only a reference to another component"},
		"itself": {`{` + closed + `"x-extends":"#/components/schemas/Derived","properties":{}}`,
			"the bases of Derived form a loop"},
		"inline": {`{` + closed + `"properties":{"inner":{` + closed + `"x-extends":"#/components/schemas/Base","properties":{}}}}`,
			"x-extends is supported in components.schemas only"},
	} {
		doc, err := readDocument([]byte(extendsDocument(tc.derived)))
		if err == nil {
			_, err = buildAPI(doc)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v; want one saying %q", what, err, tc.want)
		}
	}
}
