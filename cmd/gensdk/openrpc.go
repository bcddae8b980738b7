package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The OpenRPC document, as far as the SDKs need it. Unknown members of the document, its
// methods and its content descriptors are ignored (OpenRPC allows x- extensions there); a
// schema keyword the generator does not understand is an error, so that a change in the
// contract cannot silently produce a wrong type.
type (
	document struct {
		OpenRPC    string      `json:"openrpc"`
		Info       info        `json:"info"`
		Methods    []rpcMethod `json:"methods"`
		Components components  `json:"components"`
	}
	info struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		Version     string `json:"version"`
	}
	rpcMethod struct {
		Name           string              `json:"name"`
		Summary        string              `json:"summary"`
		Description    string              `json:"description"`
		Tags           []tag               `json:"tags"`
		ParamStructure string              `json:"paramStructure"`
		Params         []contentDescriptor `json:"params"`
		Result         *contentDescriptor  `json:"result"`
		Errors         []rpcError          `json:"errors"`
		Auth           string              `json:"x-auth"`
		TokenField     string              `json:"x-token-field"`
	}
	tag struct {
		Name string `json:"name"`
		Ref  string `json:"$ref"`
	}
	contentDescriptor struct {
		Ref         string  `json:"$ref"`
		Name        string  `json:"name"`
		Summary     string  `json:"summary"`
		Description string  `json:"description"`
		Required    bool    `json:"required"`
		Schema      *schema `json:"schema"`
	}
	rpcError struct {
		Ref     string          `json:"$ref"`
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	components struct {
		Schemas map[string]*schema  `json:"schemas"`
		Errors  map[string]rpcError `json:"errors"`
	}
)

// schema is a JSON Schema (draft 2020-12) restricted to the keywords that shape a type.
type schema struct {
	Ref         string
	Types       []string // "type", as a list; empty when absent
	Format      string
	Title       string
	Description string
	Enum        []string
	Items       *schema
	// Properties keeps the order of the document: it is the order of struct fields.
	Properties    []property
	HasProperties bool
	Required      []string
	// Closed is additionalProperties: false.
	Closed bool
	OneOf  []*schema
	// Extends is x-extends, an extension of cmd/gen: the component this object's type embeds
	// (a "#/components/schemas/" reference). The object still lists every member of that
	// base itself, for validators; the SDKs derive the type from the base's.
	Extends string
	// value is the whole schema as JSON values, to compare schemas keyword by keyword.
	value map[string]any
}

type property struct {
	Name   string
	Schema *schema
}

// validationKeywords constrain values without changing their type; the SDKs leave them to
// the server.
var validationKeywords = []string{
	"$comment", "$id", "$schema", "default", "deprecated", "examples", "exclusiveMaximum",
	"exclusiveMinimum", "maxItems", "maxLength", "maxProperties", "maximum", "minItems",
	"minLength", "minProperties", "minimum", "multipleOf", "pattern", "readOnly",
	"uniqueItems", "writeOnly",
}

func (s *schema) UnmarshalJSON(data []byte) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if err := json.Unmarshal(data, &s.value); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	for _, key := range sortedKeys(members) {
		raw := members[key]
		var err error
		switch key {
		case "$ref":
			err = json.Unmarshal(raw, &s.Ref)
		case "type":
			if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
				err = json.Unmarshal(raw, &s.Types)
			} else {
				var t string
				err = json.Unmarshal(raw, &t)
				s.Types = []string{t}
			}
		case "format":
			err = json.Unmarshal(raw, &s.Format)
		case "title":
			err = json.Unmarshal(raw, &s.Title)
		case "description":
			err = json.Unmarshal(raw, &s.Description)
		case "enum":
			if err = json.Unmarshal(raw, &s.Enum); err != nil {
				err = fmt.Errorf("only enums of strings are supported: %w", err)
			}
		case "items":
			s.Items = new(schema)
			err = json.Unmarshal(raw, s.Items)
		case "properties":
			s.HasProperties = true
			s.Properties, err = orderedProperties(raw)
		case "required":
			err = json.Unmarshal(raw, &s.Required)
		case "additionalProperties":
			switch string(bytes.TrimSpace(raw)) {
			case "false":
				s.Closed = true
			case "true", "{}":
			default:
				err = fmt.Errorf("only additionalProperties true or false is supported, not %s", raw)
			}
		case "oneOf", "anyOf":
			err = json.Unmarshal(raw, &s.OneOf)
		case "x-extends":
			err = json.Unmarshal(raw, &s.Extends)
		default:
			if !slices.Contains(validationKeywords, key) {
				err = fmt.Errorf("keyword %q is not supported by the SDK generator", key)
			}
		}
		if err != nil {
			return fmt.Errorf("schema %s: %w", key, err)
		}
	}
	return nil
}

// orderedProperties decodes a "properties" object keeping the order of its members.
func orderedProperties(raw json.RawMessage) ([]property, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("properties must be an object")
	}
	var props []property
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string)
		sub := new(schema)
		if err := dec.Decode(sub); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		props = append(props, property{Name: name, Schema: sub})
	}
	return props, nil
}

// readDocument parses an OpenRPC document and checks the parts the generator relies on.
func readDocument(data []byte) (*document, error) {
	var doc document
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(doc.OpenRPC, "1.") {
		return nil, fmt.Errorf("openrpc %q: only OpenRPC 1.x is supported", doc.OpenRPC)
	}
	if len(doc.Methods) == 0 {
		return nil, fmt.Errorf("the document has no methods")
	}
	return &doc, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
