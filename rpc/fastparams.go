package rpc

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// The fast params decoder.
//
// decode's general path turns params into a map of members, checks them, re-encodes the map
// and decodes it again into the method's struct: simple to get exactly right, and most of the
// cost of a token check. fastPlan decodes the common shapes of params straight into the
// struct in one pass over the raw JSON, without a map and without encoding/json.
//
// It never decides an error. Whatever it is not sure of — a member it does not know, a
// duplicate, a missing or null required member, an escape in a string or a name, invalid
// UTF-8, a number that is not a plain integer in range, a type it does not handle, invalid
// JSON — makes it give up, and decode takes the general path, which gives the exact -32602
// answer. So it changes how fast params are accepted, never which params are accepted or
// what they decode to; TestFastParamsAgree checks that on every method.

// fastKind is a Go field type the fast decoder fills.
type fastKind uint8

const (
	fastString      fastKind = iota + 1 // string
	fastStringPtr                       // *string
	fastBool                            // bool
	fastFlexBool                        // FlexBool
	fastFlexBoolPtr                     // *FlexBool
	fastInt                             // int, int64
	fastIntPtr                          // *int, *int64
	fastStrings                         // []string
	fastStruct                          // a struct decoded with its own plan
	fastStructPtr                       // a pointer to one
)

// fastField is one params member.
type fastField struct {
	name     string
	index    []int // reflect field index, through embedded structs
	kind     fastKind
	bits     int       // size of an integer kind
	required bool      // decode's general path refuses it absent or null
	borrow   bool      // the token of a quick method: aliases the params instead of a copy (Method.Quick)
	elem     *fastPlan // fastStruct, fastStructPtr
}

// fastPlan decodes one struct type. A plan holds at most 64 members.
type fastPlan struct {
	typ        reflect.Type
	fields     []fastField
	byName     map[string]int
	required   uint64 // bits of the required fields
	positional []int  // field of each position, for methods with positional params
	token      int    // field of TokenField, or -1
	// optionalToken: the method's token may be left out (pingSession). Left out is no token,
	// given empty is an invalid one; the fast path leaves an empty token to the general path.
	optionalToken bool
}

var (
	flexBoolType    = reflect.TypeFor[FlexBool]()
	stringSliceType = reflect.TypeFor[[]string]()
)

// newFastPlan returns the plan of m's params, or nil when they have a shape the fast decoder
// does not handle; decode then always takes the general path.
func newFastPlan(m *compiledMethod) *fastPlan {
	p := structPlan(m.Params, true)
	if p == nil || len(p.fields) != len(m.members.fields) {
		return nil
	}
	for _, f := range p.fields {
		if !m.members.fields[f.name] {
			return nil
		}
	}
	p.token = -1
	if m.TokenField != "" {
		i, ok := p.byName[m.TokenField]
		if !ok || p.fields[i].kind != fastString {
			return nil
		}
		p.token = i
		p.optionalToken = m.Auth == AuthOptionalToken
		p.fields[i].borrow = m.Quick
	}
	for _, name := range m.Positional {
		i, ok := p.byName[name]
		if !ok {
			return nil
		}
		p.positional = append(p.positional, i)
	}
	return p
}

// structPlan returns the plan of struct type t. Embedded structs are flattened only at the
// top level (as compile does); a name given twice disables the plan rather than follow
// encoding/json's rules for hidden fields.
func structPlan(t reflect.Type, top bool) *fastPlan {
	if t.Kind() != reflect.Struct {
		return nil
	}
	p := &fastPlan{typ: t, byName: map[string]int{}, token: -1}
	var add func(t reflect.Type, index []int) bool
	add = func(t reflect.Type, index []int) bool {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			at := append(append([]int(nil), index...), i)
			if sf.Anonymous && name == "" {
				if !top || sf.Type.Kind() != reflect.Struct || !add(sf.Type, at) {
					return false
				}
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			f := fastField{name: name, index: at}
			if !f.setKind(sf.Type) {
				return false
			}
			if _, taken := p.byName[name]; taken || len(p.fields) == 64 {
				return false
			}
			// Members without omitempty are required, at every level, as compile has them.
			if !optionalTag(opts) {
				f.required = true
				p.required |= 1 << len(p.fields)
			}
			p.byName[name] = len(p.fields)
			p.fields = append(p.fields, f)
		}
		return true
	}
	if !add(t, nil) {
		return nil
	}
	return p
}

func (f *fastField) setKind(t reflect.Type) bool {
	switch {
	case t == flexBoolType:
		f.kind = fastFlexBool
	case t.Kind() == reflect.Pointer && t.Elem() == flexBoolType:
		f.kind = fastFlexBoolPtr
	case t.Kind() == reflect.String && t == reflect.TypeFor[string]():
		f.kind = fastString
	case t.Kind() == reflect.Pointer && t.Elem() == reflect.TypeFor[string]():
		f.kind = fastStringPtr
	case t == reflect.TypeFor[bool]():
		f.kind = fastBool
	case t == reflect.TypeFor[int]() || t == reflect.TypeFor[int64]():
		f.kind, f.bits = fastInt, t.Bits()
	case t.Kind() == reflect.Pointer && (t.Elem() == reflect.TypeFor[int]() || t.Elem() == reflect.TypeFor[int64]()):
		f.kind, f.bits = fastIntPtr, t.Elem().Bits()
	case t == stringSliceType:
		f.kind = fastStrings
	case t.Kind() == reflect.Struct && !implementsUnmarshaler(t):
		f.kind, f.elem = fastStruct, structPlan(t, false)
		return f.elem != nil
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && !implementsUnmarshaler(t.Elem()):
		f.kind, f.elem = fastStructPtr, structPlan(t.Elem(), false)
		return f.elem != nil
	default:
		return false
	}
	return true
}

func implementsUnmarshaler(t reflect.Type) bool {
	_, ok := reflect.PointerTo(t).MethodByName("UnmarshalJSON")
	return ok
}

// fastReader reads JSON strictly; any surprise ends the fast path.
type fastReader struct {
	data []byte
	pos  int
}

func (r *fastReader) space() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

func (r *fastReader) peek() byte {
	if r.pos < len(r.data) {
		return r.data[r.pos]
	}
	return 0
}

// consume skips space and then c, reporting whether c was there.
func (r *fastReader) consume(c byte) bool {
	r.space()
	if r.peek() == c {
		r.pos++
		return true
	}
	return false
}

// plainString reads a string without escapes and returns its content, which aliases data.
func (r *fastReader) plainString() ([]byte, bool) {
	r.space()
	if r.peek() != '"' {
		return nil, false
	}
	start := r.pos + 1
	ascii := true
	for i := skipPlain(r.data, start); i < len(r.data); i = skipPlain(r.data, i+1) {
		switch c := r.data[i]; {
		case c == '"':
			s := r.data[start:i]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			r.pos = i + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		default: // c >= utf8.RuneSelf
			ascii = false
		}
	}
	return nil, false
}

func (r *fastReader) literal(word string) bool {
	r.space()
	if bytes.HasPrefix(r.data[r.pos:], []byte(word)) {
		r.pos += len(word)
		return true
	}
	return false
}

// integer reads a JSON number that is a plain integer fitting in bits.
func (r *fastReader) integer(bits int) (int64, bool) {
	r.space()
	start := r.pos
	if r.peek() == '-' {
		r.pos++
	}
	digits := r.pos
	for r.pos < len(r.data) && isDigit(r.data[r.pos]) {
		r.pos++
	}
	n := r.pos - digits
	if n == 0 || n > 1 && r.data[digits] == '0' {
		return 0, false
	}
	if c := r.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, false
	}
	v, err := strconv.ParseInt(string(r.data[start:r.pos]), 10, bits)
	return v, err == nil
}

// decode decodes raw params (already trimmed) into ptr, a *T of the plan's type holding T's
// zero value. It returns false when the general path must decide; ptr may then be partly
// filled.
func (p *fastPlan) decode(ptr reflect.Value, raw []byte, bearer string) bool {
	v := ptr.Elem()
	r := fastReader{data: raw}
	var seen uint64
	switch {
	case len(raw) == 0 || string(raw) == "null":
		r.pos = len(raw)
	case raw[0] == '{':
		var ok bool
		if seen, ok = p.object(&r, v); !ok {
			return false
		}
	case raw[0] == '[' && p.positional != nil:
		var ok bool
		if seen, ok = p.array(&r, v); !ok {
			return false
		}
	default:
		return false
	}
	if r.space(); r.pos != len(raw) {
		return false
	}
	if p.optionalToken && seen&(1<<p.token) != 0 && v.FieldByIndex(p.fields[p.token].index).Len() == 0 {
		return false // given empty, or null: only the general path tells them apart
	}
	if p.token >= 0 && bearer != "" && seen&(1<<p.token) == 0 {
		if !utf8.ValidString(bearer) {
			return false
		}
		v.FieldByIndex(p.fields[p.token].index).SetString(bearer)
		seen |= 1 << p.token
	}
	if seen&p.required != p.required {
		return false
	}
	return true
}

// array reads positional params into v and returns which members it had.
func (p *fastPlan) array(r *fastReader, v reflect.Value) (uint64, bool) {
	if !r.consume('[') {
		return 0, false
	}
	var seen uint64
	if r.consume(']') {
		return 0, true
	}
	for _, field := range p.positional {
		if !p.fields[field].read(r, v) {
			return 0, false
		}
		seen |= 1 << field
		if r.consume(']') {
			return seen, true
		}
		if !r.consume(',') {
			return 0, false
		}
	}
	return 0, false // more items than positions
}

// object reads an object of the plan's members into v and returns which members it had.
func (p *fastPlan) object(r *fastReader, v reflect.Value) (uint64, bool) {
	if !r.consume('{') {
		return 0, false
	}
	var seen uint64
	if r.consume('}') {
		return 0, true
	}
	for {
		name, ok := r.plainString()
		if !ok || !r.consume(':') {
			return 0, false
		}
		i, known := p.byName[string(name)]
		if !known || seen&(1<<i) != 0 {
			return 0, false
		}
		seen |= 1 << i
		if !p.fields[i].read(r, v) {
			return 0, false
		}
		if r.consume('}') {
			return seen, true
		}
		if !r.consume(',') {
			return 0, false
		}
	}
}

// read reads one member's value into its field of the struct v.
func (f *fastField) read(r *fastReader, v reflect.Value) bool {
	r.space()
	if r.peek() == 'n' {
		if !r.literal("null") {
			return false
		}
		// null leaves a field as it is (nil for pointers and slices), as encoding/json does;
		// The general path refuses a null required member.
		return !f.required
	}
	field := v.FieldByIndex(f.index)
	switch f.kind {
	case fastString, fastStringPtr:
		s, ok := r.plainString()
		if !ok {
			return false
		}
		switch {
		case f.borrow && len(s) > 0:
			field.SetString(unsafe.String(&s[0], len(s)))
		case f.kind == fastString:
			field.SetString(string(s))
		default:
			str := string(s)
			field.Set(reflect.ValueOf(&str))
		}
	case fastBool:
		switch {
		case r.literal("true"):
			field.SetBool(true)
		case r.literal("false"):
		default:
			return false
		}
	case fastFlexBool, fastFlexBoolPtr:
		var b bool
		switch {
		case r.literal("true"), r.literal(`"true"`):
			b = true
		case r.literal("false"), r.literal(`"false"`):
		default:
			return false
		}
		if f.kind == fastFlexBool {
			field.SetBool(b)
		} else {
			fb := FlexBool(b)
			field.Set(reflect.ValueOf(&fb))
		}
	case fastInt, fastIntPtr:
		n, ok := r.integer(f.bits)
		if !ok {
			return false
		}
		if f.kind == fastInt {
			field.SetInt(n)
		} else {
			p := reflect.New(field.Type().Elem())
			p.Elem().SetInt(n)
			field.Set(p)
		}
	case fastStrings:
		if !r.consume('[') {
			return false
		}
		list := []string{} // [] decodes to an empty slice, not nil
		if !r.consume(']') {
			for {
				s, ok := r.plainString()
				if !ok {
					return false
				}
				list = append(list, string(s))
				if r.consume(']') {
					break
				}
				if !r.consume(',') {
					return false
				}
			}
		}
		field.Set(reflect.ValueOf(list))
	case fastStruct:
		seen, ok := f.elem.object(r, field)
		return ok && seen&f.elem.required == f.elem.required // else the general path says which
	case fastStructPtr:
		p := reflect.New(f.elem.typ)
		if seen, ok := f.elem.object(r, p.Elem()); !ok || seen&f.elem.required != f.elem.required {
			return false
		}
		field.Set(p)
	default:
		return false
	}
	return true
}
