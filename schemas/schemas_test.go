package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sessiond/sessiond/engine"
	"github.com/sessiond/sessiond/rpc"
)

const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// TestSchemasCompile checks that every generated schema file is marked as generated and
// compiles on its own as JSON Schema draft 2020-12.
func TestSchemasCompile(t *testing.T) {
	names, err := schemaFiles()
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * len(rpc.Methods); len(names) != want {
		t.Errorf("%d schema files, want %d (params and result of every method)", len(names), want)
	}
	for _, name := range names {
		doc, id, err := load(name)
		if err != nil {
			t.Fatal(err)
		}
		obj := doc.(map[string]any)
		if obj["$schema"] != draft2020 {
			t.Errorf("%s: $schema is %v", name, obj["$schema"])
		}
		if c, _ := obj["$comment"].(string); !strings.Contains(c, "DO NOT EDIT") {
			t.Errorf("%s: no generated-file $comment", name)
		}
		if !strings.HasSuffix(id, "/"+name) {
			t.Errorf("%s: $id %s does not name the file", name, id)
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		if err := c.AddResource(id, doc); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Compile(id); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestOpenRPCSchemasCompile checks that every schema in openrpc.json (components, params and
// results) compiles as draft 2020-12 with its references resolved in components.schemas.
func TestOpenRPCSchemasCompile(t *testing.T) {
	var doc struct {
		Methods []struct {
			Name   string `json:"name"`
			Params []struct {
				Name string `json:"name"`
			} `json:"params"`
		} `json:"methods"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenRPC, &doc); err != nil {
		t.Fatal(err)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenRPC))
	if err != nil {
		t.Fatal(err)
	}
	const base = "https://example.invalid/openrpc.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(base, raw); err != nil {
		t.Fatal(err)
	}
	var locations []string
	for name := range doc.Components.Schemas {
		locations = append(locations, "#/components/schemas/"+name)
	}
	for i, m := range doc.Methods {
		for j := range m.Params {
			locations = append(locations, fmt.Sprintf("#/methods/%d/params/%d/schema", i, j))
		}
		locations = append(locations, fmt.Sprintf("#/methods/%d/result/schema", i))
	}
	if len(doc.Methods) != len(rpc.Methods) {
		t.Errorf("openrpc.json has %d methods, the method table %d", len(doc.Methods), len(rpc.Methods))
	}
	for _, loc := range locations {
		if _, err := c.Compile(base + loc); err != nil {
			t.Errorf("%s: %v", loc, err)
		}
	}
}

// TestValidateCreateSessionParams checks ValidateParams on good and bad createSession params.
func TestValidateCreateSessionParams(t *testing.T) {
	good := []string{
		`{"username": "admin", "password": "secret"}`,
		`{"username": "app", "password": "", "description": "nightly job", "defaultDebug": "max",
		  "defaultBinaryFormat": "base64", "defaultResponseOptions": {"dataFormat": "objects"},
		  "idleConnectionTimeoutSeconds": 0, "idleCursorTimeoutSeconds": -1, "permanentSession": "true"}`,
		`{"username": "app", "password": "x", "permanentSession": false}`,
	}
	bad := []string{
		``,
		`{"password": "secret"}`,
		`{"username": "", "password": "secret"}`,
		`{"username": "admin", "password": "secret", "defaultDebug": "loud"}`,
		`{"username": "admin", "password": "secret", "idleConnectionTimeoutSeconds": -1}`,
		`{"username": "admin", "password": "secret", "idleCursorTimeoutSeconds": 2147483648}`,
		`{"username": "admin", "password": "secret", "permanentSession": "yes"}`,
		`{"username": "admin", "password": "secret", "defaultResponseOptions": {"dataFormat": "rows"}}`,
		`{"username": "admin", "password": "secret", "authToken": "x"}`,
		`["admin", "secret"]`,
	}
	checkValidator(t, "createSession", ValidateParams, good, bad)
}

// TestValidateAuthenticateParams checks ValidateParams on authenticate's positional and
// named forms.
func TestValidateAuthenticateParams(t *testing.T) {
	good := []string{
		`["admin", "secret"]`,
		`{"login": "admin", "password": "secret"}`,
	}
	bad := []string{
		`["admin"]`,
		`["admin", "secret", "extra"]`,
		`[1, "secret"]`,
		`{"login": "admin"}`,
		`{"username": "admin", "password": "secret"}`,
		`"admin"`,
	}
	checkValidator(t, "authenticate", ValidateParams, good, bad)
}

// TestValidateCreateSessionResult checks ValidateResult on hand-written session objects.
func TestValidateCreateSessionResult(t *testing.T) {
	session := map[string]any{
		"authToken": "tmp_abc", "sessionId": "s1", "username": "admin", "description": "",
		"defaultApi": "admin", "defaultDebug": "none", "defaultDatabaseName": "", "defaultOwnerName": "",
		"defaultBinaryFormat": "hex", "defaultResponseOptions": map[string]any{"numberFormat": "number"},
		"idleConnectionTimeoutSeconds": 3600, "idleCursorTimeoutSeconds": 600, "permanentSession": false,
		"origin": "createSession", "sessionStartTimestamp": "2024-10-09T05:01:23Z",
		"sessionLastAccessedTimestamp": "2024-10-09T05:01:23Z", "expiresAt": "2024-10-09T06:01:23Z",
		"clientAddress": "127.0.0.1:50000", "hostname": "h", "hostUuid": "u", "hostIpAddresses": []string{"10.0.0.1"},
		"defaultRetentionPolicy": "autoPurge", "defaultRetentionUnit": "week", "defaultRetentionPeriod": 4,
	}
	with := func(key string, value any) string {
		m := make(map[string]any, len(session))
		for k, v := range session {
			m[k] = v
		}
		if value == nil && key != "expiresAt" {
			delete(m, key)
		} else {
			m[key] = value
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good := []string{
		with("description", "as sent"),
		with("expiresAt", nil), // a session that never expires
		with("idleConnectionTimeoutSeconds", -1),
	}
	bad := []string{
		with("authToken", nil), // a login always returns its token
		with("sessionId", nil),
		with("expiresAt", "tomorrow"),
		with("idleConnectionTimeoutSeconds", -2),
		with("hostIpAddresses", nil),
		with("origin", "login"),
		with("password", "secret"),
		`{}`,
		`null`,
	}
	checkValidator(t, "createSession", ValidateResult, good, bad)
}

// TestSessionObjectMatchesSchema checks that an rpc.SessionWithToken as encoding/json writes
// it is a valid createSession result, and its rpc.Session without a token a valid session of
// listSessions, so the Go types and their schemas agree.
func TestSessionObjectMatchesSchema(t *testing.T) {
	when := rpc.Timestamp(time.Date(2024, 10, 9, 5, 1, 23, 0, time.UTC))
	s := rpc.Session{
		SessionId: "s1", Username: "admin", DefaultDebug: "none",
		DefaultResponseOptions: engine.ResponseOptions{DataFormat: "objects"},
		Origin:                 string(engine.OriginAuthenticate), SessionStartTimestamp: when,
		SessionLastAccessedTimestamp: when, ExpiresAt: &when, HostIpAddresses: []string{},
	}
	b, err := json.Marshal(rpc.SessionWithToken{AuthToken: "sdt_x", Session: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateResult("createSession", b); err != nil {
		t.Error(err)
	}
	b, err = json.Marshal(rpc.SessionsResult{Sessions: []rpc.Session{s}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateResult("listSessions", b); err != nil {
		t.Error(err)
	}
}

// TestValidateUnknownMethod checks that a method without schemas is an error, not a pass.
func TestValidateUnknownMethod(t *testing.T) {
	if err := ValidateParams("noSuchMethod", json.RawMessage(`{}`)); err == nil {
		t.Error("ValidateParams accepted an unknown method")
	}
	if err := ValidateResult("noSuchMethod", json.RawMessage(`{}`)); err == nil {
		t.Error("ValidateResult accepted an unknown method")
	}
}

// TestValidateNullableResult checks getUserPreference's string-or-null result.
func TestValidateNullableResult(t *testing.T) {
	checkValidator(t, "getUserPreference", ValidateResult, []string{`"dark"`, `null`}, []string{`1`, `{}`})
}

func checkValidator(t *testing.T, method string, validate func(string, json.RawMessage) error, good, bad []string) {
	t.Helper()
	for _, g := range good {
		if err := validate(method, json.RawMessage(g)); err != nil {
			t.Errorf("%s: valid %s rejected: %v", method, g, err)
		}
	}
	for _, b := range bad {
		err := validate(method, json.RawMessage(b))
		if err == nil {
			t.Errorf("%s: invalid %s accepted", method, b)
			continue
		}
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: %s: error is not a validation error: %v", method, b, err)
		}
	}
}

// TestOpenRPCWithNodeTools runs tools/validate-openrpc.mjs: @open-rpc/schema-utils-js
// validates and dereferences openrpc.json, and Ajv compiles every schema file.
func TestOpenRPCWithNodeTools(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; install Node.js and run `npm ci --prefix schemas/tools`")
	}
	if _, err := os.Stat(filepath.Join("tools", "node_modules")); err != nil {
		t.Skip("schemas/tools/node_modules is missing; run `npm ci --prefix schemas/tools`")
	}
	out, err := exec.Command(node, filepath.Join("tools", "validate-openrpc.mjs")).CombinedOutput()
	if err != nil {
		t.Fatalf("node tools/validate-openrpc.mjs: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
