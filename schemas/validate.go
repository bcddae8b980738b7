package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// files holds every generated file: <method>.params.json, <method>.result.json and
// openrpc.json.
//
//go:embed *.json
var files embed.FS

// compiled is every method's params and result schema, compiled once, by file name.
var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	names, err := schemaFiles()
	if err != nil {
		return nil, err
	}
	ids := make(map[string]string, len(names))
	for _, name := range names {
		doc, id, err := load(name)
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", name, err)
		}
		ids[name] = id
	}
	out := make(map[string]*jsonschema.Schema, len(names))
	for _, name := range names {
		sch, err := c.Compile(ids[name])
		if err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", name, err)
		}
		out[name] = sch
	}
	return out, nil
})

// schemaFiles lists the embedded JSON Schema files: every file but openrpc.json.
func schemaFiles() ([]string, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, name := range names {
		if name != "openrpc.json" {
			out = append(out, name)
		}
	}
	return out, nil
}

// load decodes an embedded schema file and returns it with its $id.
func load(name string) (doc any, id string, err error) {
	data, err := files.ReadFile(name)
	if err != nil {
		return nil, "", err
	}
	doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("schemas: %s: %w", name, err)
	}
	obj, _ := doc.(map[string]any)
	id, _ = obj["$id"].(string)
	if id == "" {
		return nil, "", fmt.Errorf("schemas: %s has no $id", name)
	}
	return doc, id, nil
}

// ValidateParams checks the params of a call of method against schemas/<method>.params.json:
// an object, or an array for methods that also take positional params. Absent or null params
// are checked as {}, which is how the server reads them. It returns nil when the params are
// valid, and otherwise an error naming the method and every violation (a
// *jsonschema.ValidationError of github.com/santhosh-tekuri/jsonschema/v6 is wrapped).
//
// The schema checks what a schema can: a member of the wrong type, out of range or unknown.
// The server checks a little more (for example, that length limits count bytes, not
// characters).
func ValidateParams(method string, params json.RawMessage) error {
	if t := bytes.TrimSpace(params); len(t) == 0 || string(t) == "null" {
		params = json.RawMessage("{}")
	}
	return validate(method, "params", params)
}

// ValidateResult checks the result of a successful call of method (the JSON-RPC response's
// result member) against schemas/<method>.result.json. It returns nil when the result is
// valid, and otherwise an error naming the method and every violation.
func ValidateResult(method string, result json.RawMessage) error {
	return validate(method, "result", result)
}

func validate(method, part string, value json.RawMessage) error {
	all, err := compiled()
	if err != nil {
		return err
	}
	sch, ok := all[method+"."+part+".json"]
	if !ok {
		return fmt.Errorf("schemas: no method %q", method)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return fmt.Errorf("schemas: %s %s: not JSON: %w", method, part, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("schemas: %s %s: %w", method, part, err)
	}
	return nil
}
