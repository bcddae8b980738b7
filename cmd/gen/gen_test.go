package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// chdirRoot moves the test to the repository root, where the generator runs.
func chdirRoot(t *testing.T) {
	t.Helper()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findRoot(cwd)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
}

// TestGeneratedFilesUpToDate regenerates in memory and fails if schemas/ differs: run
// `go generate ./...` after changing the method table, its types or their doc comments.
func TestGeneratedFilesUpToDate(t *testing.T) {
	chdirRoot(t)
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := compare(files, outDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("generated files are out of date; run `go generate ./...`:\n\t%s", strings.Join(problems, "\n\t"))
	}
}

// TestGenerateIsDeterministic checks that two runs produce the same bytes.
func TestGenerateIsDeterministic(t *testing.T) {
	chdirRoot(t)
	first, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	second, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(second) {
		t.Fatalf("%d files, then %d", len(first), len(second))
	}
	for name, b := range first {
		if !bytes.Equal(b, second[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}

// TestContractKeywords checks that the limits of API.md land in the schemas: enums and ranges
// from the engine, nullable timestamps, FlexBool, the positional tuple and the OpenRPC form.
func TestContractKeywords(t *testing.T) {
	chdirRoot(t)
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	doc := func(name string) map[string]any {
		var v map[string]any
		if err := json.Unmarshal(files[name], &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return v
	}
	at := func(v any, path ...string) any {
		for _, p := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[p]
		}
		return v
	}
	create := doc("createSession.params.json")
	session := doc("createSession.result.json")
	auth := doc("authenticate.params.json")
	openrpc := doc("openrpc.json")
	checks := []struct {
		what      string
		got, want any
	}{
		{"defaultDebug enum", at(create, "properties", "defaultDebug", "enum"), []any{"none", "max"}},
		{"defaultBinaryFormat enum", at(create, "properties", "defaultBinaryFormat", "enum"), []any{"hex", "base64", "byteArray"}},
		{"responseOptions dataFormat enum", at(create, "$defs", "ResponseOptions", "properties", "dataFormat", "enum"), []any{"arrays", "objects"}},
		{"idleConnectionTimeoutSeconds minimum", at(create, "properties", "idleConnectionTimeoutSeconds", "minimum"), 0.0},
		{"idleConnectionTimeoutSeconds maximum", at(create, "properties", "idleConnectionTimeoutSeconds", "maximum"), 2147483647.0},
		{"idleCursorTimeoutSeconds minimum", at(create, "properties", "idleCursorTimeoutSeconds", "minimum"), -1.0},
		{"username maxLength", at(create, "properties", "username", "maxLength"), 64.0},
		{"permanentSession FlexBool", at(create, "properties", "permanentSession", "oneOf"), []any{
			map[string]any{"type": "boolean"}, map[string]any{"type": "string", "enum": []any{"true", "false"}}}},
		{"required", at(create, "required"), []any{"username", "password"}},
		{"sessionStartTimestamp", at(session, "properties", "sessionStartTimestamp", "format"), "date-time"},
		{"expiresAt nullable", at(session, "properties", "expiresAt", "type"), []any{"string", "null"}},
		{"getUserPreference nullable", at(doc("getUserPreference.result.json"), "type"), []any{"string", "null"}},
		{"authenticate result", at(doc("authenticate.result.json"), "type"), "string"},
		{"authenticate positional", at(auth, "oneOf").([]any)[1].(map[string]any)["minItems"], 2.0},
		{"$comment", at(create, "$comment"), generatedMarker},
		{"$id", at(create, "$id"), schemaBase + "createSession.params.json"},
		{"openrpc marker", at(openrpc, "x-generated"), generatedMarker},
		{"serverUnavailable component", at(openrpc, "components", "errors", "serverUnavailable", "code"), -32000.0},
		{"SessionWithToken extends Session", at(openrpc, "components", "schemas", "SessionWithToken", "x-extends"), "#/components/schemas/Session"},
		{"Session extends nothing", at(openrpc, "components", "schemas", "Session", "x-extends"), nil},
		{"schema files carry no x-extends", at(session, "x-extends"), nil},
		{"SessionWithToken still lists Session's members", at(openrpc, "components", "schemas", "SessionWithToken", "properties", "sessionId", "type"), "string"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	if bytes.Contains(files["openrpc.json"], []byte("#/$defs/")) {
		t.Error("openrpc.json still refers to #/$defs/")
	}
	for _, m := range at(openrpc, "methods").([]any) {
		m := m.(map[string]any)
		want := "by-name"
		if m["name"] == "authenticate" || m["name"] == "setUserPreference" || m["name"] == "getUserPreference" || m["name"] == "logout" {
			want = "either"
		}
		if m["paramStructure"] != want {
			t.Errorf("%s: paramStructure %v, want %s", m["name"], m["paramStructure"], want)
		}
		// Every method may be refused (-32000); every one that uses the store may find it
		// unavailable (1010), but authenticate, which answers that "-1".
		codes := map[float64]bool{}
		for _, e := range m["errors"].([]any) {
			codes[e.(map[string]any)["code"].(float64)] = true
		}
		storeError := m["name"] != "rpc.discover" && m["name"] != "authenticate"
		if !codes[-32000] || codes[1010] != storeError {
			t.Errorf("%s: errors %v: -32000 missing, or 1010 listed %v, want %v", m["name"], codes, codes[1010], storeError)
		}
	}
}

// TestFindRoot checks that the root is found from a subdirectory and not outside the module.
func TestFindRoot(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := findRoot(cwd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "rpc", "methods.go")); err != nil {
		t.Errorf("root %s has no rpc/methods.go: %v", root, err)
	}
	if _, err := findRoot(t.TempDir()); err == nil {
		t.Error("findRoot found a root above a temporary directory")
	}
}

type shadowedInner struct {
	Token string `json:"token,omitempty"`
	Name  string `json:"name"`
}

type shadowingOuter struct {
	Token string `json:"token"`
	shadowedInner
}

// TestMembersShadow checks that a field hides the embedded one of its name, as encoding/json
// does, and is marked as hiding it (its description is then its own, not the hidden one's).
func TestMembersShadow(t *testing.T) {
	var got []string
	for _, m := range members(reflect.TypeFor[shadowingOuter]()) {
		got = append(got, fmt.Sprintf("%s owner=%s omitempty=%t shadows=%t", m.name, m.owner.Name(), m.omitempty, m.shadows))
	}
	want := []string{
		"token owner=shadowingOuter omitempty=false shadows=true",
		"name owner=shadowedInner omitempty=false shadows=false",
	}
	if !slices.Equal(got, want) {
		t.Errorf("members:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var schema struct {
		Properties map[string]struct{ Description string }
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "schemas", "createSession.result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	if d := schema.Properties["authToken"].Description; d != "authToken is the session's token." {
		t.Errorf("a login's authToken is described %q, by the field it hides", d)
	}
}

type (
	baseA    struct{ A string }
	baseB    struct{ B string }
	extendsA struct {
		C string
		baseA
	}
	extendsBoth struct {
		baseA
		baseB
	}
	extendsNone struct {
		*baseA
		Named baseA `json:"named"`
		baseB `json:"-"`
		baseC
	}
	baseC struct{ C string }
)

// TestEmbeddedComponent checks which base x-extends names: a component embedded by value as
// encoding/json flattens it; not one behind a pointer, named or left out, nor a struct that
// is no component; and that two bases are an error.
func TestEmbeddedComponent(t *testing.T) {
	types := map[string]reflect.Type{"baseA": reflect.TypeFor[baseA](), "baseB": reflect.TypeFor[baseB]()}
	b := &openrpcBuilder{schemas: map[string]json.RawMessage{"baseA": nil, "baseB": nil}}
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[extendsA]():    "baseA",
		reflect.TypeFor[extendsNone](): "",
		reflect.TypeFor[baseA]():       "",
	} {
		if got, err := b.embeddedComponent(typ, types); err != nil || got != want {
			t.Errorf("%s extends %q (%v); want %q", typ, got, err, want)
		}
	}
	if got, err := b.embeddedComponent(reflect.TypeFor[extendsBoth](), types); err == nil {
		t.Errorf("a type embedding two components extends %q; want an error", got)
	}
}
