package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/invopop/jsonschema"
	"github.com/sourcegraph/jsonrpc2"

	"github.com/sessiond/sessiond/rpc"
)

const (
	// openrpcVersion is the OpenRPC specification the document follows.
	openrpcVersion = "1.3.2"
	// apiVersion is info.version: the version of the wire contract. Raise it when a method,
	// a member or an error changes.
	apiVersion = "1.0.0"
	// componentPrefix begins every reference into components.schemas.
	componentPrefix = "#/components/schemas/"
	// extendsKeyword (an extension) marks a component whose Go type embeds another component's
	// and names that base. The component's schema still lists every member of the base itself,
	// for validators and for clients that know no extensions; the SDK generator (cmd/gensdk)
	// derives its type from the base's.
	extendsKeyword = "x-extends"
)

// The OpenRPC document. Struct fields keep the order of the specification; maps are written
// with sorted keys, so the output is deterministic.
type (
	openrpcDocument struct {
		Generated  string            `json:"x-generated"`
		OpenRPC    string            `json:"openrpc"`
		Info       openrpcInfo       `json:"info"`
		Methods    []openrpcMethod   `json:"methods"`
		Components openrpcComponents `json:"components"`
	}
	openrpcInfo struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Version     string `json:"version"`
	}
	openrpcMethod struct {
		Name           string              `json:"name"`
		Summary        string              `json:"summary"`
		Description    string              `json:"description,omitempty"`
		Tags           []openrpcTag        `json:"tags"`
		ParamStructure string              `json:"paramStructure"`
		Params         []contentDescriptor `json:"params"`
		Result         contentDescriptor   `json:"result"`
		Errors         []openrpcError      `json:"errors"`
		// Auth and TokenField (extensions) tell SDKs how the method authenticates and which
		// member an HTTP Bearer token may fill.
		Auth       string `json:"x-auth"`
		TokenField string `json:"x-token-field,omitempty"`
	}
	openrpcTag struct {
		Name string `json:"name"`
	}
	contentDescriptor struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Required    *bool           `json:"required,omitempty"`
		Schema      json.RawMessage `json:"schema"`
	}
	openrpcError struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data,omitempty"`
	}
	openrpcComponents struct {
		Schemas map[string]json.RawMessage `json:"schemas"`
		Errors  map[string]openrpcError    `json:"errors"`
	}
)

// The standard errors every method can return besides its own. -32000 refuses a request the
// server cannot take now (data.reason tooManyConnections or shuttingDown).
var (
	invalidParamsError     = openrpcError{Code: jsonrpc2.CodeInvalidParams, Message: "Invalid params"}
	internalError          = openrpcError{Code: jsonrpc2.CodeInternalError, Message: "Internal error"}
	serverUnavailableError = openrpcError{Code: rpc.CodeUnavailable, Message: "Server unavailable"}
)

// openrpcBuilder collects components.schemas while the methods are described.
type openrpcBuilder struct {
	schemas map[string]json.RawMessage
}

// component adds a schema to components.schemas; a name already there must have the same
// schema.
func (b *openrpcBuilder) component(name string, schema json.RawMessage) error {
	if prev, ok := b.schemas[name]; ok {
		if !bytes.Equal(prev, schema) {
			return fmt.Errorf("components.schemas.%s: two different schemas:\n%s\n%s", name, prev, schema)
		}
		return nil
	}
	b.schemas[name] = schema
	return nil
}

// componentSchema encodes s for the OpenRPC document: without the keywords of a schema
// file's root, with references into components.schemas instead of $defs.
func componentSchema(s *jsonschema.Schema, keepTitle bool) (json.RawMessage, error) {
	bare := *s
	bare.Version, bare.ID, bare.Comments, bare.Definitions = "", "", "", nil
	if !keepTitle {
		bare.Title = ""
	}
	b, err := json.Marshal(&bare)
	if err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(b, []byte(`"$ref":"#/$defs/`), []byte(`"$ref":"`+componentPrefix)), nil
}

// markExtends adds x-extends to every component whose Go type embeds the Go type of another
// component. types maps the name of every component to its Go type.
func (b *openrpcBuilder) markExtends(types map[string]reflect.Type) error {
	for _, name := range slices.Sorted(maps.Keys(b.schemas)) {
		t, ok := types[name]
		if !ok {
			return fmt.Errorf("components.schemas.%s: no Go type is named so", name)
		}
		base, err := b.embeddedComponent(t, types)
		if err != nil {
			return fmt.Errorf("components.schemas.%s: %w", name, err)
		}
		if base == "" {
			continue
		}
		member, err := json.Marshal(map[string]string{extendsKeyword: componentPrefix + base})
		if err != nil {
			return err
		}
		schema := b.schemas[name]
		if len(schema) < 2 || schema[0] != '{' || string(schema) == "{}" {
			return fmt.Errorf("components.schemas.%s: embeds %s but has no members", name, base)
		}
		b.schemas[name] = slices.Concat(member[:len(member)-1], []byte(","), schema[1:])
	}
	return nil
}

// embeddedComponent names the component whose Go type t embeds the way encoding/json
// flattens it (a struct by value, with no JSON name), or is "" when t embeds none.
func (b *openrpcBuilder) embeddedComponent(t reflect.Type, types map[string]reflect.Type) (string, error) {
	if t.Kind() != reflect.Struct {
		return "", nil
	}
	var bases []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.Anonymous || name != "" || f.Type.Kind() != reflect.Struct {
			continue
		}
		if _, ok := b.schemas[f.Type.Name()]; ok && types[f.Type.Name()] == f.Type {
			bases = append(bases, f.Type.Name())
		}
	}
	if len(bases) > 1 {
		return "", fmt.Errorf("%s embeds components %s: %s names one base", t, strings.Join(bases, " and "), extendsKeyword)
	}
	if len(bases) == 0 {
		return "", nil
	}
	return bases[0], nil
}

// addDefs moves the $defs of s into components.schemas.
func (b *openrpcBuilder) addDefs(s *jsonschema.Schema) error {
	for name, def := range s.Definitions {
		raw, err := componentSchema(def, false)
		if err != nil {
			return err
		}
		if err := b.component(name, raw); err != nil {
			return err
		}
	}
	return nil
}

// openRPC builds the OpenRPC document of every method. types maps the name of every
// struct type the schemas describe to its Go type.
func openRPC(all []*methodSchemas, types map[string]reflect.Type) ([]byte, error) {
	errs, byCode, err := errorComponents()
	if err != nil {
		return nil, err
	}
	b := &openrpcBuilder{schemas: map[string]json.RawMessage{}}
	doc := openrpcDocument{
		Generated: generatedMarker,
		OpenRPC:   openrpcVersion,
		Info: openrpcInfo{
			Title:       "sessiond",
			Description: infoDescription(),
			Version:     apiVersion,
		},
		Components: openrpcComponents{Schemas: b.schemas, Errors: errs},
	}
	for _, ms := range all {
		m, err := b.method(ms, byCode)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ms.method.Name, err)
		}
		doc.Methods = append(doc.Methods, m)
	}
	if err := b.markExtends(types); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// method describes one method of the table.
func (b *openrpcBuilder) method(ms *methodSchemas, byCode map[int]openrpcError) (openrpcMethod, error) {
	m := ms.method
	out := openrpcMethod{
		Name:           m.Name,
		Summary:        m.Summary,
		Description:    m.Description,
		Tags:           []openrpcTag{{Name: m.Family}},
		ParamStructure: "by-name",
		Params:         []contentDescriptor{},
		Auth:           string(m.Auth),
		TokenField:     m.TokenField,
	}
	names := m.Positional
	if names != nil {
		out.ParamStructure = "either"
	} else {
		for name := range ms.object.Properties.KeysFromOldest() {
			names = append(names, name)
		}
	}
	required := map[string]bool{}
	for _, name := range ms.object.Required {
		required[name] = true
	}
	if err := b.addDefs(ms.object); err != nil {
		return out, err
	}
	for _, name := range names {
		prop, ok := ms.object.Properties.Get(name)
		if !ok {
			return out, fmt.Errorf("no params member %s", name)
		}
		schema, err := componentSchema(prop, true)
		if err != nil {
			return out, err
		}
		req := required[name]
		out.Params = append(out.Params, contentDescriptor{
			Name: name, Description: prop.Description, Required: &req, Schema: schema,
		})
	}

	if err := b.addDefs(ms.result); err != nil {
		return out, err
	}
	result := contentDescriptor{Name: m.Name + "Result", Description: ms.result.Description}
	if ms.resultName != "" {
		if err := b.component(ms.resultName, ms.resultComponent); err != nil {
			return out, err
		}
		result.Schema = json.RawMessage(`{"$ref":"#/components/schemas/` + ms.resultName + `"}`)
		if m.NullableResult {
			result.Schema = json.RawMessage(`{"anyOf":[` + string(result.Schema) + `,{"type":"null"}]}`)
		}
	} else {
		schema, err := componentSchema(ms.result, true)
		if err != nil {
			return out, err
		}
		result.Schema = schema
	}
	out.Result = result

	for _, code := range m.Errors {
		e, ok := byCode[code]
		if !ok {
			return out, fmt.Errorf("error code %d is not in rpc.ErrorCodes", code)
		}
		out.Errors = append(out.Errors, e)
	}
	if m.Name != "rpc.discover" && !m.FailsInResult && !slices.Contains(m.Errors, rpc.CodeStoreUnavailable) {
		out.Errors = append(out.Errors, byCode[rpc.CodeStoreUnavailable]) // every call that reads or writes the store
	}
	out.Errors = append(out.Errors, invalidParamsError, internalError, serverUnavailableError)
	return out, nil
}

// errorComponents turns rpc.ErrorCodes into components.errors, keyed by data.reason, with the
// three standard errors every method can return.
func errorComponents() (map[string]openrpcError, map[int]openrpcError, error) {
	byReason := map[string]openrpcError{
		"invalidParams":     invalidParamsError,
		"internalError":     internalError,
		"serverUnavailable": serverUnavailableError,
	}
	byCode := map[int]openrpcError{}
	for _, c := range rpc.ErrorCodes {
		e := openrpcError{Code: c.Code, Message: c.Message, Data: map[string]string{"reason": c.Reason}}
		if _, dup := byReason[c.Reason]; dup {
			return nil, nil, fmt.Errorf("rpc.ErrorCodes: reason %s used twice", c.Reason)
		}
		if _, dup := byCode[c.Code]; dup {
			return nil, nil, fmt.Errorf("rpc.ErrorCodes: code %d used twice", c.Code)
		}
		byReason[c.Reason] = e
		byCode[c.Code] = e
	}
	return byReason, byCode, nil
}

// infoDescription introduces the API and lists its application errors, which OpenRPC error
// objects have no room to explain.
func infoDescription() string {
	var b strings.Builder
	b.WriteString("Sessions and API keys over JSON-RPC 2.0 (TCP, stdio and HTTP). ")
	b.WriteString("FairCom JSON Admin API methods take named params and the caller's token in `authToken`; ")
	b.WriteString("NetX methods take positional params (or the same members by name) and the token in `sessionKey`. ")
	b.WriteString("Over HTTP, `Authorization: Bearer <token>` fills the member named by `x-token-field` when the params omit it or give it as null.\n\n")
	b.WriteString("Application errors carry a stable `data.reason`:\n\n")
	b.WriteString("| code | data.reason | when |\n|---|---|---|\n")
	for _, c := range rpc.ErrorCodes {
		fmt.Fprintf(&b, "| %d | %s | %s |\n", c.Code, c.Reason, strings.ReplaceAll(c.When, "|", `\|`))
	}
	b.WriteString("\n-32602 (Invalid params) carries `data.field` and `data.reason`; -32603 (Internal error) carries no detail; -32000 (Server unavailable) carries `data.reason` `tooManyConnections` (with `data.limit`) or `shuttingDown`.")
	return b.String()
}
