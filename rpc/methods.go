package rpc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/sessiond/sessiond/engine"
)

// Auth says how a method authenticates its caller.
type Auth string

const (
	// AuthNone: no credentials.
	AuthNone Auth = "none"
	// AuthCredentials: a username and password in the params.
	AuthCredentials Auth = "credentials"
	// AuthToken: an authToken or sessionKey in the params (or an HTTP Bearer token).
	AuthToken Auth = "token"
	// AuthOptionalToken: a token may be given.
	AuthOptionalToken Auth = "optionalToken"
)

// Method is one entry of the method table: everything dispatch, the JSON Schemas, the OpenRPC
// document and the SDKs need to know about an RPC method.
type Method struct {
	Name string
	// Summary is one line; Description may say more. Both are written for users.
	Summary     string
	Description string
	// Family groups methods for documentation and SDK files: "session", "account", "netx",
	// "discovery".
	Family string
	Auth   Auth
	// TokenField is the params member holding the caller's token ("authToken" or
	// "sessionKey"); an HTTP Bearer token fills it when the params omit it or give null.
	TokenField string
	// Positional lists the params members by position for methods that take positional
	// params (NetX); nil means named params only.
	Positional []string
	// Params and Result are the Go types of the params object and of the result.
	Params reflect.Type
	Result reflect.Type
	// NullableResult means the result may be null.
	NullableResult bool
	// Errors are the application error codes the method can return.
	Errors []int
	// FailsInResult means the method answers every failure of its own, a store that does
	// not answer included, in its result (authenticate's "-1"): its errors are protocol
	// faults only.
	FailsInResult bool
	// Quick means the method answers from memory in microseconds: no password hash, no disk
	// write it waits for (setUserPreference of a stored label excepted: one write, synced
	// with others), no list of every session. Connections answer quick requests on their
	// reader goroutine (QuickDispatcher). A quick method's handler keeps no pointer to its
	// params once it returns: they are reused. Nor does it keep its TokenField's string,
	// which the fast decoder does not copy: it points into the request's bytes, which the
	// connection reads the next request into. (A token is only parsed and hashed; the one
	// place it goes further, describeSessions's session of the caller, is encoded into the
	// reply before the next read.)
	Quick bool
	// NeverWaits means a quick method answered from memory alone: on a single processor
	// the event loop answers it for every connection (NeverWaiter), so a wait in it would
	// hold them all up. Called from the loop (InEventLoop), such a method returns
	// ErrWouldWait, before it does anything, for the params that would make it wait:
	// setUserPreference for any label but TickleTime (a write), describeSessions without
	// tokens or ids (a list of every session). None never waits on a store that checks
	// tokens with a round trip (Engine.ChecksInMemory).
	NeverWaits bool

	call func(ctx context.Context, s *Service, params any, client engine.Client) (any, error)
}

// method builds a table entry from a typed handler.
func method[P, R any](m Method, h func(ctx context.Context, s *Service, p *P, client engine.Client) (R, error)) Method {
	m.Params = reflect.TypeFor[P]()
	m.Result = reflect.TypeFor[R]()
	m.call = func(ctx context.Context, s *Service, params any, client engine.Client) (any, error) {
		return h(ctx, s, params.(*P), client)
	}
	return m
}

// Methods is the method table: the single source of truth for dispatch, schemas, the OpenRPC
// document and the SDKs. Its order is the order of the documentation.
var Methods = concat(sessionMethods, accountMethods, netxMethods, discoveryMethods)

func concat(lists ...[]Method) []Method {
	var out []Method
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// Service dispatches calls of the method table to the engine.
type Service struct {
	eng     *engine.Engine
	log     *slog.Logger
	methods map[string]*compiledMethod
	// discover is the OpenRPC document returned by rpc.discover.
	discover json.RawMessage
}

type compiledMethod struct {
	Method
	members *memberSet // the params' members, and theirs
	fast    *fastPlan  // nil: params always take the general path
	pool    sync.Pool  // of *P, for a quick method
}

// NewService returns the dispatcher of the method table on eng. openRPC is the document
// rpc.discover returns.
func NewService(eng *engine.Engine, openRPC []byte, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{eng: eng, log: log, methods: make(map[string]*compiledMethod, len(Methods)), discover: json.RawMessage(openRPC)}
	for _, m := range Methods {
		s.methods[m.Name] = compile(m)
	}
	return s
}

// Health reports whether the service can serve calls: whether its store answers
// (HealthChecker, GET /health).
func (s *Service) Health(ctx context.Context) error { return s.eng.CheckStore(ctx) }

func compile(m Method) *compiledMethod {
	c := &compiledMethod{Method: m, members: newMemberSet(m.Params)}
	c.fast = newFastPlan(c)
	return c
}

type jsonField struct {
	name     string
	optional bool
	typ      reflect.Type
}

// memberSet names the members of an object the params decode into: all of them, the
// required ones (no omitempty), and those that are objects in turn (setUserPreference's
// bean: {label, value}), with their own.
type memberSet struct {
	fields   map[string]bool
	required []string
	objects  []objectMember
}

type objectMember struct {
	name    string
	members *memberSet
}

func newMemberSet(t reflect.Type) *memberSet {
	ms := &memberSet{fields: map[string]bool{}}
	for _, f := range jsonFields(t) {
		ms.fields[f.name] = true
		if !f.optional {
			ms.required = append(ms.required, f.name)
		}
		if t := f.typ; t.Kind() == reflect.Struct || t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
			if t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			ms.objects = append(ms.objects, objectMember{f.name, newMemberSet(t)})
		}
	}
	return ms
}

// check refuses an unknown member, and a required one left out or null, in members and in
// the objects among them, naming it by its path after prefix.
func (ms *memberSet) check(prefix string, members map[string]json.RawMessage) *jsonrpc2.Error {
	for name := range members {
		if !ms.fields[name] {
			return InvalidParams(prefix+name, "unknown member")
		}
	}
	for _, name := range ms.required {
		if missing(members, name) {
			return InvalidParams(prefix+name, "required")
		}
	}
	for _, o := range ms.objects {
		var inner map[string]json.RawMessage
		if v, ok := members[o.name]; !ok || json.Unmarshal(v, &inner) != nil || inner == nil {
			continue // absent, null or not an object: as the member itself decides
		}
		if err := o.members.check(prefix+o.name+".", inner); err != nil {
			return err
		}
	}
	return nil
}

// optionalTag reports whether a json tag's options (after the name) make its member
// optional: without omitempty or omitzero it is required.
func optionalTag(opts string) bool {
	return strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
}

// missing reports whether members lacks name or has it null: a required member's absence.
func missing(members map[string]json.RawMessage, name string) bool {
	v, ok := members[name]
	return !ok || string(bytes.TrimSpace(v)) == "null"
}

// jsonFields lists the JSON members of a struct type, following embedded structs; a field
// hides the embedded ones of its name, as in encoding/json.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	own := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); !t.Field(i).Anonymous || name != "" {
			own[cmp.Or(name, t.Field(i).Name)] = true
		}
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			for _, e := range jsonFields(f.Type) {
				if !own[e.name] {
					out = append(out, e)
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name: name, optional: optionalTag(opts), typ: f.Type})
	}
	return out
}

// Dispatch runs one call. It implements Dispatcher.
func (s *Service) Dispatch(ctx context.Context, call *Call) (any, error) {
	m, ok := s.methods[call.Method]
	if !ok {
		return nil, MethodNotFound(call.Method)
	}
	params, werr := m.decode(call.Params, call.BearerToken)
	if werr != nil {
		return nil, werr
	}
	client := engine.Client{Address: call.Client.Addr}
	result, err := m.call(ctx, s, params, client)
	m.release(params)
	if err == ErrWouldWait {
		return nil, err
	}
	if err != nil {
		if wire := knownWireError(err); wire != nil {
			return nil, wire
		}
		return nil, err // the server logs it and answers -32603
	}
	return result, nil
}

// Quick reports whether method is a quick one of the table. It implements QuickDispatcher:
// decode copies what it keeps of the params.
func (s *Service) Quick(method string) bool {
	m, ok := s.methods[method]
	return ok && m.Quick
}

// NeverWaits reports whether method is a quick one that never waits with this service's
// store. It implements NeverWaiter.
func (s *Service) NeverWaits(method string) bool {
	m, ok := s.methods[method]
	return ok && m.Quick && m.NeverWaits && s.eng.ChecksInMemory()
}

var paramsBufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// decode turns raw params (object, array or absent) into a *P of the method, checking
// unknown and missing members. Errors are -32602 naming the member, except that an optional
// token given empty is an invalid token (12031). The common shapes are decoded in one pass
// (fastparams.go); the general path decides everything else.
func (m *compiledMethod) decode(raw json.RawMessage, bearer string) (any, *jsonrpc2.Error) {
	raw = bytes.TrimSpace(raw)
	if m.fast != nil {
		ptr := m.newParams()
		if m.fast.decode(ptr, raw, bearer) {
			return ptr.Interface(), nil
		}
		m.release(ptr.Interface())
	}
	return m.decodeGeneral(raw, bearer)
}

// newParams returns a new *P holding P's zero value; a quick method's come from its pool.
func (m *compiledMethod) newParams() reflect.Value {
	if m.Quick {
		if p := m.pool.Get(); p != nil {
			return reflect.ValueOf(p)
		}
	}
	return reflect.New(m.Params)
}

// release gives a quick method's *P back to its pool once the call is over, zeroed: its
// handler keeps no pointer to it (see Method.Quick), and what it kept of the fields (strings,
// slices) is not written again, since decoding fills fields anew. It is a no-op for other
// methods.
func (m *compiledMethod) release(params any) {
	if !m.Quick {
		return
	}
	reflect.ValueOf(params).Elem().SetZero()
	m.pool.Put(params)
}

// decodeGeneral is decode without the fast path: members into a map, checked, re-encoded and
// decoded into the struct.
func (m *compiledMethod) decodeGeneral(raw json.RawMessage, bearer string) (any, *jsonrpc2.Error) {
	raw = bytes.TrimSpace(raw)
	var members map[string]json.RawMessage
	switch {
	case len(raw) == 0 || string(raw) == "null":
		members = map[string]json.RawMessage{}
	case raw[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, InvalidParams("params", "not a valid JSON array")
		}
		if m.Positional == nil {
			if len(items) > 0 {
				return nil, InvalidParams("params", "this method takes named params (an object)")
			}
			members = map[string]json.RawMessage{}
			break
		}
		if len(items) > len(m.Positional) {
			plural := "s"
			if len(m.Positional) == 1 {
				plural = ""
			}
			return nil, InvalidParams("params", fmt.Sprintf("at most %d positional param%s: %s", len(m.Positional), plural, strings.Join(m.Positional, ", ")))
		}
		members = make(map[string]json.RawMessage, len(items))
		for i, item := range items {
			members[m.Positional[i]] = item
		}
	case raw[0] == '{':
		if err := json.Unmarshal(raw, &members); err != nil {
			return nil, InvalidParams("params", "not a valid JSON object")
		}
	default:
		return nil, InvalidParams("params", "must be an object or an array")
	}
	// Decoding keeps the last of two equal members silently; a proxy in front may keep the
	// first, and the two would act on different params. Refuse them, as the protocol layer
	// does for the members of the request object. A positional param's path starts with its
	// name, as a named one's does.
	if len(raw) > 0 && raw[0] == '[' {
		for _, name := range m.Positional {
			if path, ok := duplicateMember(members[name]); ok {
				return nil, InvalidParams(name+"."+path, "duplicate member")
			}
		}
	} else if path, ok := duplicateMember(raw); ok {
		return nil, InvalidParams(path, "duplicate member")
	}
	if m.TokenField != "" && bearer != "" {
		if missing(members, m.TokenField) { // left out, or null: the NetX way to skip a positional param
			quoted, _ := json.Marshal(bearer)
			members[m.TokenField] = quoted
		}
	}
	if err := m.members.check("", members); err != nil {
		return nil, err
	}
	buf := paramsBufPool.Get().(*bytes.Buffer)
	defer func() { buf.Reset(); paramsBufPool.Put(buf) }()
	if err := json.NewEncoder(buf).Encode(members); err != nil {
		return nil, InvalidParams("params", "cannot be re-encoded")
	}
	p := reflect.New(m.Params)
	dec := json.NewDecoder(buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(p.Interface()); err != nil {
		return nil, decodeError(err)
	}
	if m.Auth == AuthOptionalToken {
		// An optional token left out (or null) means none; one given empty is a token, and a
		// malformed one, as it is for every method that needs a token. The member is given,
		// so a Bearer token did not replace it.
		if v, ok := members[m.TokenField]; ok && string(bytes.TrimSpace(v)) == `""` {
			return nil, invalidTokenError()
		}
	}
	return p.Interface(), nil
}

// duplicateMember returns the path of a member given twice in one object anywhere in raw,
// which is valid JSON: its name after the names of the members the object is in
// ("defaultResponseOptions.dataFormat"). A string is a member name when a colon follows it.
// Small objects are checked without allocating; an object with many members uses a map, so
// that it takes linear time.
func duplicateMember(raw []byte) (string, bool) {
	type object struct {
		first int                 // where the object's names start in names
		seen  map[string]struct{} // its names, once it has more than a few
		key   []byte              // the name of the member the object is the value of, or in
	}
	var objectsBuf [8]object
	var namesBuf [16][]byte
	objects, names := objectsBuf[:0], namesBuf[:0]
	var last []byte // the latest member name of the innermost object
	path := func(name []byte) string {
		var b strings.Builder
		for _, o := range objects {
			if len(o.key) > 0 {
				b.Write(o.key)
				b.WriteByte('.')
			}
		}
		b.Write(name)
		return b.String()
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '{':
			objects = append(objects, object{first: len(names), key: last})
			last = nil
		case '}':
			if len(objects) == 0 {
				return "", false
			}
			o := objects[len(objects)-1]
			names = names[:o.first]
			objects = objects[:len(objects)-1]
			last = o.key // an object after this one in an array is in the same member
		case '"':
			start, escaped := i, false
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					escaped = true
					i++
				}
			}
			if i >= len(raw) || len(objects) == 0 {
				continue
			}
			next := i + 1
			for next < len(raw) && (raw[next] == ' ' || raw[next] == '\t' || raw[next] == '\n' || raw[next] == '\r') {
				next++
			}
			if next == len(raw) || raw[next] != ':' {
				continue // a value, not a member name
			}
			name := raw[start+1 : i]
			if escaped {
				var unescaped string
				if json.Unmarshal(raw[start:i+1], &unescaped) != nil {
					return "", false
				}
				name = []byte(unescaped)
			}
			last = name
			o := &objects[len(objects)-1]
			if o.seen != nil {
				if _, dup := o.seen[string(name)]; dup {
					return path(name), true
				}
				o.seen[string(name)] = struct{}{}
				continue
			}
			for _, seen := range names[o.first:] {
				if bytes.Equal(seen, name) {
					return path(name), true
				}
			}
			names = append(names, name)
			if len(names)-o.first > 16 {
				o.seen = make(map[string]struct{}, 64)
				for _, seen := range names[o.first:] {
					o.seen[string(seen)] = struct{}{}
				}
				names = names[:o.first]
			}
		}
	}
	return "", false
}

// decodeError names the member a JSON decoding error is about.
func decodeError(err error) *jsonrpc2.Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := jsonPath(te.Field)
		if field == "" {
			field = "params"
		}
		return InvalidParams(field, "must be "+jsonTypeName(te.Type))
	}
	var pe *paramError
	if errors.As(err, &pe) {
		return InvalidParams(pe.field, pe.reason)
	}
	return InvalidParams("params", err.Error())
}

// jsonPath drops the names of embedded Go structs from a decoder's field path, leaving the
// JSON member names ("SessionOptions.idleConnectionTimeoutSeconds" → "idleConnectionTimeoutSeconds").
func jsonPath(field string) string {
	parts := strings.Split(field, ".")
	out := parts[:0]
	for _, p := range parts {
		if p != "" && (p[0] < 'A' || p[0] > 'Z') {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

// paramError is returned by custom decoders of param values.
type paramError struct{ field, reason string }

func (e *paramError) Error() string { return e.field + ": " + e.reason }

func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	default:
		return "an object"
	}
}
