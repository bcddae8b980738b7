package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The API model: the OpenRPC document resolved into named types, methods and errors, with no
// language in it yet. Each language's renderer turns it into files.
type (
	api struct {
		Title       string
		Version     string
		Description string
		Methods     []*method
		// Types are every named object type: the components (sorted by name), then the params
		// of each method and the inline objects, in method order.
		Types []*namedType
		// Errors are components.errors: application codes ascending, then the JSON-RPC ones.
		Errors   []*apiError
		Families []string // tag names, in order of first use
	}

	method struct {
		Name        string // on the wire, e.g. "createSession", "rpc.discover"
		Ident       string // lowerCamel name in the SDKs, e.g. "createSession", "discover"
		Summary     string
		Description string
		Family      string
		// Positional is true for paramStructure "either" and "by-position": the SDKs send the
		// params as an array in the order of Params.
		Positional bool
		Params     []*field
		// ParamsType is the named type of the params object; nil when the method has none.
		ParamsType  *namedType
		Result      *typeRef
		ResultDoc   string
		Errors      []*apiError
		Auth        string
		TokenField  string
		ownedTypes  []*namedType // inline types first met in this method
		resultEmpty bool
	}

	// field is a member of an object: a property or a by-name param.
	field struct {
		Name        string // on the wire
		Description string
		Required    bool
		Type        *typeRef
		// Token is the params member that carries the caller's token (x-token-field). The
		// SDKs make it optional: over HTTP a bearer token may stand in for it.
		Token bool
		// Inherited is a member of a type's Base that is the same there (schema, description
		// and requiredness): the SDKs declare it in the base only.
		Inherited bool
		// Redeclares is the member of a type's Base that this one declares anew: with the same
		// schema, but required here where the base's is optional, or described otherwise.
		Redeclares *field
	}

	namedType struct {
		Name        string
		Description string
		Fields      []*field
		// Open objects allow members the schema does not declare; the SDKs keep them.
		Open bool
		// Params is true for the params object of a method.
		Params bool
		// Base is the component this one extends (x-extends): every member of Base is a member
		// here too, with the same schema, so the SDKs derive this type from Base (Go embeds it,
		// TypeScript extends it, Python subclasses it). Fields still lists every member.
		Base   *namedType
		owner  *method // the method whose file holds the type; nil for components
		filled bool
	}

	apiError struct {
		Code    int
		Reason  string // the key in components.errors, e.g. "invalidAuthToken"
		Message string
		// Data is the error's data in components.errors as compact JSON, or "".
		Data string
		When string // from the error table of info.description, if it has one
	}

	typeRef struct {
		Kind     kind
		Enum     []string
		Nullable bool
		Elem     *typeRef   // kindArray
		Named    *namedType // kindNamed
		Alts     []*typeRef // kindUnion
	}
)

type kind int

const (
	kindAny kind = iota
	kindString
	kindInteger
	kindNumber
	kindBoolean
	kindTime // a string in format date-time
	kindArray
	kindMap // an object without declared properties
	kindNamed
	kindUnion
)

// empty reports whether t is a closed object without members, like {}.
func (t *typeRef) empty() bool {
	return t.Kind == kindNamed && len(t.Named.Fields) == 0 && !t.Named.Open
}

// first is the alternative the typed SDKs (Go, Python) use for a union: its first one.
func (t *typeRef) first() *typeRef {
	if t.Kind != kindUnion {
		return t
	}
	alt := *t.Alts[0].first()
	alt.Nullable = alt.Nullable || t.Nullable
	return &alt
}

const componentPrefix = "#/components/schemas/"

// builder resolves schemas into typeRefs.
type builder struct {
	doc    *document
	api    *api
	byName map[string]*namedType
	owner  *method
}

// buildAPI resolves the document into the model.
func buildAPI(doc *document) (*api, error) {
	b := &builder{doc: doc, byName: map[string]*namedType{}}
	a := &api{Title: doc.Info.Title, Version: doc.Info.Version, Description: doc.Info.Description}
	b.api = a
	for _, name := range sortedKeys(doc.Components.Schemas) {
		if !isIdent(name) {
			return nil, fmt.Errorf("components.schemas.%s: not a usable type name", name)
		}
		nt := &namedType{Name: name}
		b.byName[name] = nt
		a.Types = append(a.Types, nt)
	}
	for _, name := range sortedKeys(doc.Components.Schemas) {
		s := doc.Components.Schemas[name]
		if !isObject(s) {
			return nil, fmt.Errorf("components.schemas.%s: only object schemas are supported as components", name)
		}
		if err := b.fill(b.byName[name], s); err != nil {
			return nil, fmt.Errorf("components.schemas.%s: %w", name, err)
		}
	}
	errs, err := buildErrors(doc)
	if err != nil {
		return nil, err
	}
	a.Errors = errs
	seen := map[string]bool{}
	idents := map[string]string{}
	for i := range doc.Methods {
		m, err := b.method(&doc.Methods[i])
		if err != nil {
			return nil, fmt.Errorf("method %s: %w", doc.Methods[i].Name, err)
		}
		if other, dup := idents[m.Ident]; dup {
			return nil, fmt.Errorf("methods %s and %s both become %s in the SDKs", other, m.Name, m.Ident)
		}
		idents[m.Ident] = m.Name
		a.Methods = append(a.Methods, m)
		if !seen[m.Family] {
			seen[m.Family] = true
			a.Families = append(a.Families, m.Family)
		}
	}
	return a, nil
}

func (b *builder) method(rm *rpcMethod) (*method, error) {
	m := &method{
		Name:        rm.Name,
		Ident:       methodIdent(rm.Name),
		Summary:     strings.TrimSpace(rm.Summary),
		Description: strings.TrimSpace(rm.Description),
		Auth:        rm.Auth,
		TokenField:  rm.TokenField,
	}
	if !isIdent(m.Ident) {
		return nil, fmt.Errorf("the name cannot become an identifier")
	}
	if len(rm.Tags) == 0 || rm.Tags[0].Name == "" {
		return nil, fmt.Errorf("no tag: the first tag names the method's family (its SDK file)")
	}
	m.Family = rm.Tags[0].Name
	if !isLowerIdent(m.Family) {
		return nil, fmt.Errorf("tag %q: a family must be a lower-case word", m.Family)
	}
	switch rm.ParamStructure {
	case "", "by-name":
	case "either", "by-position":
		m.Positional = true
	default:
		return nil, fmt.Errorf("paramStructure %q is not supported", rm.ParamStructure)
	}
	b.owner = m
	defer func() { b.owner = nil }()

	tokenSeen := rm.TokenField == ""
	for i, cd := range rm.Params {
		if cd.Ref != "" || cd.Schema == nil {
			return nil, fmt.Errorf("params[%d]: only inline content descriptors with a schema are supported", i)
		}
		if !isIdent(cd.Name) {
			return nil, fmt.Errorf("params[%d]: %q is not a usable name", i, cd.Name)
		}
		t, err := b.typeOf(cd.Schema, exportName(m.Ident)+exportName(cd.Name))
		if err != nil {
			return nil, fmt.Errorf("param %s: %w", cd.Name, err)
		}
		f := &field{Name: cd.Name, Description: firstNonEmpty(cd.Description, cd.Summary, cd.Schema.Description),
			Required: cd.Required, Type: t, Token: cd.Name == rm.TokenField}
		if f.Token {
			tokenSeen = true
			if t.Kind != kindString {
				return nil, fmt.Errorf("x-token-field %s is not a string", cd.Name)
			}
		}
		if m.Positional && f.Required && i > 0 && !m.Params[i-1].Required && !m.Params[i-1].Token {
			return nil, fmt.Errorf("param %s: a required positional param follows an optional one", cd.Name)
		}
		m.Params = append(m.Params, f)
	}
	if !tokenSeen {
		return nil, fmt.Errorf("x-token-field %q names no param", rm.TokenField)
	}
	if len(m.Params) > 0 {
		pt := &namedType{Name: exportName(m.Ident) + "Params", Fields: m.Params, Params: true, owner: m, filled: true,
			Description: fmt.Sprintf("%sParams are the params of %s.", exportName(m.Ident), m.Name)}
		if err := b.register(pt); err != nil {
			return nil, err
		}
		m.ParamsType = pt
	}

	if rm.Result == nil || rm.Result.Schema == nil || rm.Result.Ref != "" {
		return nil, fmt.Errorf("result: only an inline content descriptor with a schema is supported")
	}
	t, err := b.typeOf(rm.Result.Schema, exportName(m.Ident)+"Result")
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	m.Result = t
	m.resultEmpty = t.empty() && !t.Nullable
	m.ResultDoc = firstNonEmpty(rm.Result.Description, rm.Result.Summary, rm.Result.Schema.Description)

	for i, e := range rm.Errors {
		ae, err := b.resolveError(e)
		if err != nil {
			return nil, fmt.Errorf("errors[%d]: %w", i, err)
		}
		m.Errors = append(m.Errors, ae)
	}
	return m, nil
}

// typeOf resolves a schema. name is the type name an inline object gets when it has no title.
func (b *builder) typeOf(s *schema, name string) (*typeRef, error) {
	if s.Extends != "" {
		return nil, fmt.Errorf("x-extends is supported in components.schemas only")
	}
	if s.Ref != "" {
		target, ok := strings.CutPrefix(s.Ref, componentPrefix)
		nt := b.byName[target]
		if !ok || nt == nil || nt.Params || nt.owner != nil {
			return nil, fmt.Errorf("$ref %q: only references to components.schemas are supported", s.Ref)
		}
		if len(s.Types) > 0 || s.HasProperties || s.Items != nil || len(s.OneOf) > 0 {
			return nil, fmt.Errorf("$ref %q with sibling type keywords is not supported", s.Ref)
		}
		return &typeRef{Kind: kindNamed, Named: nt}, nil
	}
	if len(s.OneOf) > 0 {
		if len(s.Types) > 0 || s.HasProperties || s.Items != nil {
			return nil, fmt.Errorf("oneOf/anyOf beside type keywords is not supported")
		}
		u := &typeRef{Kind: kindUnion}
		for i, alt := range s.OneOf {
			at, err := b.typeOf(alt, fmt.Sprintf("%s%d", name, i+1))
			if err != nil {
				return nil, fmt.Errorf("oneOf[%d]: %w", i, err)
			}
			if at.Nullable {
				u.Nullable = true
			}
			u.Alts = append(u.Alts, at)
		}
		return u, nil
	}
	types := slices.Clone(s.Types)
	nullable := false
	if i := slices.Index(types, "null"); i >= 0 {
		nullable = true
		types = slices.Delete(types, i, i+1)
	}
	if len(types) > 1 {
		return nil, fmt.Errorf("type %v: several non-null types are not supported", s.Types)
	}
	t := &typeRef{Nullable: nullable}
	typ := ""
	if len(types) == 1 {
		typ = types[0]
	} else if s.HasProperties {
		typ = "object"
	}
	if len(s.Enum) > 0 && typ != "string" {
		return nil, fmt.Errorf("enum: only string enums are supported")
	}
	switch typ {
	case "":
		if nullable {
			return nil, fmt.Errorf("type null alone is not supported")
		}
		t.Kind = kindAny
	case "string":
		t.Kind = kindString
		t.Enum = s.Enum
		if s.Format == "date-time" {
			t.Kind = kindTime
		}
	case "integer":
		t.Kind = kindInteger
	case "number":
		t.Kind = kindNumber
	case "boolean":
		t.Kind = kindBoolean
	case "array":
		if s.Items == nil {
			return nil, fmt.Errorf("an array needs items")
		}
		elem, err := b.typeOf(s.Items, name+"Item")
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		t.Kind, t.Elem = kindArray, elem
	case "object":
		if !s.HasProperties {
			t.Kind = kindMap
			break
		}
		nt := &namedType{Name: firstNonEmpty(s.Title, name), owner: b.owner}
		if !isIdent(nt.Name) {
			return nil, fmt.Errorf("title %q is not a usable type name", nt.Name)
		}
		if err := b.register(nt); err != nil {
			return nil, err
		}
		if err := b.fill(nt, s); err != nil {
			return nil, fmt.Errorf("%s: %w", nt.Name, err)
		}
		if b.owner != nil {
			b.owner.ownedTypes = append(b.owner.ownedTypes, nt)
		}
		t.Kind, t.Named = kindNamed, nt
	default:
		return nil, fmt.Errorf("type %q is not supported", typ)
	}
	return t, nil
}

func isObject(s *schema) bool {
	return s.Ref == "" && len(s.OneOf) == 0 && (slices.Equal(s.Types, []string{"object"}) || (len(s.Types) == 0 && s.HasProperties))
}

func (b *builder) register(nt *namedType) error {
	if _, dup := b.byName[nt.Name]; dup {
		return fmt.Errorf("type name %s is used twice", nt.Name)
	}
	b.byName[nt.Name] = nt
	b.api.Types = append(b.api.Types, nt)
	return nil
}

// fill sets the fields of an object type from its schema.
func (b *builder) fill(nt *namedType, s *schema) error {
	if nt.filled {
		return nil
	}
	nt.filled = true
	nt.Description = strings.TrimSpace(s.Description)
	nt.Open = !s.Closed
	for _, r := range s.Required {
		if !slices.ContainsFunc(s.Properties, func(p property) bool { return p.Name == r }) {
			return fmt.Errorf("required member %q is not a property", r)
		}
	}
	base, baseSchema, err := b.base(nt, s)
	if err != nil {
		return err
	}
	for _, p := range s.Properties {
		if !isIdent(p.Name) {
			return fmt.Errorf("property %q is not a usable name", p.Name)
		}
		f := &field{Name: p.Name, Description: strings.TrimSpace(p.Schema.Description), Required: slices.Contains(s.Required, p.Name)}
		if i := slices.IndexFunc(baseSchema.Properties, func(bp property) bool { return bp.Name == p.Name }); i >= 0 {
			if err := inherit(f, p.Schema, base.Fields[i], baseSchema.Properties[i].Schema); err != nil {
				return fmt.Errorf("x-extends %s: %w", base.Name, err)
			}
			nt.Fields = append(nt.Fields, f)
			continue
		}
		t, err := b.typeOf(p.Schema, nt.Name+exportName(p.Name))
		if err != nil {
			return fmt.Errorf("property %s: %w", p.Name, err)
		}
		f.Type = t
		nt.Fields = append(nt.Fields, f)
	}
	if base == nil {
		return nil
	}
	for _, bf := range base.Fields {
		if !slices.ContainsFunc(nt.Fields, func(f *field) bool { return f.Name == bf.Name }) {
			return fmt.Errorf("x-extends %s: the base's member %s is missing", base.Name, bf.Name)
		}
	}
	nt.Base = base
	return nil
}

// base resolves the x-extends of a component's schema s: the base component, filled, and
// its schema, or nil and an empty schema when s extends nothing. The SDKs derive only closed
// objects from closed objects: Go could not embed a base that reads its undeclared members
// itself, and such a base would take the derived type's own members for undeclared ones.
func (b *builder) base(nt *namedType, s *schema) (*namedType, *schema, error) {
	if s.Extends == "" {
		return nil, &schema{}, nil
	}
	name, ok := strings.CutPrefix(s.Extends, componentPrefix)
	baseSchema := b.doc.Components.Schemas[name]
	if !ok || baseSchema == nil || b.byName[name] == nil {
		return nil, nil, fmt.Errorf("x-extends %q: only a reference to another component is supported", s.Extends)
	}
	for ancestor, seen := baseSchema, map[*schema]bool{s: true}; ancestor != nil; {
		if seen[ancestor] {
			return nil, nil, fmt.Errorf("x-extends %s: the bases of %s form a loop", name, nt.Name)
		}
		seen[ancestor] = true
		next, _ := strings.CutPrefix(ancestor.Extends, componentPrefix)
		ancestor = b.doc.Components.Schemas[next]
	}
	base := b.byName[name]
	if err := b.fill(base, baseSchema); err != nil {
		return nil, nil, fmt.Errorf("x-extends %s: %w", name, err)
	}
	if nt.Open || base.Open {
		return nil, nil, fmt.Errorf("x-extends %s: the base and %s must both be closed objects (additionalProperties false)", name, nt.Name)
	}
	return base, baseSchema, nil
}

// inherit makes f, a member of a derived type whose schema is s, the member bf of its base,
// whose schema is bs: inherited when they are the same, or declared anew when f only makes
// the member required or describes it otherwise. Any other difference is an error: the
// derived type could not be used where the base is wanted.
func inherit(f *field, s *schema, bf *field, bs *schema) error {
	if !reflect.DeepEqual(withoutDescription(s.value), withoutDescription(bs.value)) {
		return fmt.Errorf("member %s: its schema differs from the base's", f.Name)
	}
	if bf.Required && !f.Required {
		return fmt.Errorf("member %s: optional, but required in the base", f.Name)
	}
	f.Type = bf.Type
	if f.Required == bf.Required && f.Description == bf.Description {
		f.Inherited = true
	} else {
		f.Redeclares = bf
	}
	return nil
}

// withoutDescription is a schema's JSON value without its description.
func withoutDescription(value map[string]any) map[string]any {
	out := maps.Clone(value)
	delete(out, "description")
	return out
}

// buildErrors lists components.errors, application codes ascending, then JSON-RPC codes.
func buildErrors(doc *document) ([]*apiError, error) {
	when := errorTable(doc.Info.Description)
	var out []*apiError
	codes := map[int]string{}
	for _, reason := range sortedKeys(doc.Components.Errors) {
		e := doc.Components.Errors[reason]
		if !isIdent(reason) {
			return nil, fmt.Errorf("components.errors.%s: not a usable name", reason)
		}
		if other, dup := codes[e.Code]; dup {
			return nil, fmt.Errorf("components.errors: %s and %s share code %d", other, reason, e.Code)
		}
		codes[e.Code] = reason
		ae := &apiError{Code: e.Code, Reason: reason, Message: e.Message, When: when[reason]}
		if len(e.Data) > 0 && string(e.Data) != "null" {
			var compact bytes.Buffer
			if err := json.Compact(&compact, e.Data); err != nil {
				return nil, fmt.Errorf("components.errors.%s.data: %w", reason, err)
			}
			ae.Data = compact.String()
		}
		out = append(out, ae)
	}
	for _, e := range specErrors {
		if _, ok := codes[e.Code]; !ok {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *apiError) int {
		if (a.Code < 0) != (b.Code < 0) {
			return cmp.Compare(b.Code, a.Code) // positive codes first
		}
		if a.Code < 0 {
			return cmp.Compare(b.Code, a.Code) // -32602 before -32603
		}
		return cmp.Compare(a.Code, b.Code)
	})
	return out, nil
}

// specErrors are the errors of the JSON-RPC 2.0 specification that a server answers to a
// request it cannot read, which no method lists. The SDKs know them too, unless
// components.errors has their codes already.
var specErrors = []*apiError{
	{Code: -32700, Reason: "parseError", Message: "Parse error", When: "The server could not parse the request as JSON."},
	{Code: -32600, Reason: "invalidRequest", Message: "Invalid Request", When: "The request is not a valid JSON-RPC request, or it is over the server's size limit."},
	{Code: -32601, Reason: "methodNotFound", Message: "Method not found", When: "The server has no such method."},
}

// resolveError finds a method's error in components.errors, by $ref or by code.
func (b *builder) resolveError(e rpcError) (*apiError, error) {
	if e.Ref != "" {
		reason, ok := strings.CutPrefix(e.Ref, "#/components/errors/")
		if !ok {
			return nil, fmt.Errorf("$ref %q: only references to components.errors are supported", e.Ref)
		}
		for _, ae := range b.api.Errors {
			if ae.Reason == reason {
				return ae, nil
			}
		}
		return nil, fmt.Errorf("$ref %q: no such error", e.Ref)
	}
	for _, ae := range b.api.Errors {
		if ae.Code == e.Code {
			return ae, nil
		}
	}
	return nil, fmt.Errorf("code %d is not in components.errors", e.Code)
}

// errorRow is a row of the error table in info.description: | code | reason | when |.
var errorRow = regexp.MustCompile(`(?m)^\|\s*(-?\d+)\s*\|\s*([A-Za-z]+)\s*\|\s*(.+?)\s*\|\s*$`)

// errorTable returns the "when" column of the Markdown error table in the document's
// description, by reason. components.errors has no description member of its own.
func errorTable(description string) map[string]string {
	out := map[string]string{}
	for _, m := range errorRow.FindAllStringSubmatch(description, -1) {
		if _, err := strconv.Atoi(m[1]); err == nil {
			out[m[2]] = m[3]
		}
	}
	return out
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// dataReason is data.reason of an error of components.errors, or "".
func dataReason(e *apiError) string {
	var data struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal([]byte(e.Data), &data) != nil {
		return ""
	}
	return data.Reason
}
