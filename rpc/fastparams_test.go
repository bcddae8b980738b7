package rpc

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/sourcegraph/jsonrpc2"
)

// fastCandidates are member values of every JSON type and of the shapes that take the
// fast path's exits: escapes, invalid UTF-8, non-integers, out-of-range integers, nulls.
var fastCandidates = []string{
	`"x"`, `""`, `"é"`, `"a\"b"`, `"\u0041"`, "\"\xff\"", `"tab` + "\t" + `"`, `"true"`, `"false"`, `"TRUE"`,
	`0`, `-1`, `42`, `-0`, `1.5`, `1e3`, `9223372036854775807`, `9223372036854775808`, `-9223372036854775809`,
	`true`, `false`, `null`, `[]`, `["a"]`, `["a","b"]`, `[1]`, `[null]`, `["a",]`, `{}`,
	`{"label":"l","value":"v"}`, `{"label":"l"}`, `{"label":1}`, `{"label":"a","label":"b"}`, `{"Label":"l"}`,
	`{"binaryFormat":"hex"}`, `{"dataFormat":"objects","numberFormat":"string"}`, `{"x":1}`, `[{}]`,
}

// validValue is a value of the member's type that decodes.
func validValue(f *fastField) string {
	switch f.kind {
	case fastString, fastStringPtr:
		return `"sdt_value"`
	case fastBool, fastFlexBool, fastFlexBoolPtr:
		return `true`
	case fastInt, fastIntPtr:
		return `7`
	case fastStrings:
		return `["a","b"]`
	case fastStruct, fastStructPtr:
		var members []string
		for i := range f.elem.fields {
			members = append(members, fmt.Sprintf("%q:%s", f.elem.fields[i].name, validValue(&f.elem.fields[i])))
		}
		return "{" + strings.Join(members, ",") + "}"
	}
	return `null`
}

// fastCorpus returns params for m: a valid object, each member alone with each candidate
// value, members missing, unknown, duplicated, positional forms and odd spacing.
func fastCorpus(m *compiledMethod) []string {
	p := m.fast
	var out []string
	object := func(values map[string]string, order []string) string {
		var members []string
		for _, name := range order {
			if v, ok := values[name]; ok {
				members = append(members, fmt.Sprintf("%q:%s", name, v))
			}
		}
		return "{" + strings.Join(members, ",") + "}"
	}
	var names []string
	valid := map[string]string{}
	for i := range p.fields {
		names = append(names, p.fields[i].name)
		valid[p.fields[i].name] = validValue(&p.fields[i])
	}
	out = append(out, object(valid, names), "", "null", "{}", "[]", " { } ", "\t"+object(valid, names)+"\n", `"x"`, `1`, `{`, `{}x`)
	for _, name := range names {
		for _, candidate := range fastCandidates {
			values := map[string]string{}
			for k, v := range valid {
				values[k] = v
			}
			values[name] = candidate
			out = append(out, object(values, names))
		}
		without := map[string]string{}
		for k, v := range valid {
			if k != name {
				without[k] = v
			}
		}
		out = append(out, object(without, names))
		out = append(out, strings.TrimSuffix(object(valid, names), "}")+fmt.Sprintf(",%q:%s}", name, valid[name]))
	}
	out = append(out, strings.TrimSuffix(object(valid, names), "}")+`,"unknownMember":1}`)
	spaced := object(valid, names)
	spaced = strings.ReplaceAll(spaced, ":", " : ")
	spaced = strings.ReplaceAll(spaced, ",", " ,\n ")
	out = append(out, spaced)
	if len(m.Positional) > 0 {
		var items []string
		for _, name := range m.Positional {
			items = append(items, valid[name])
		}
		out = append(out, "["+strings.Join(items, ",")+"]", "["+strings.Join(items, " , ")+" ]",
			"["+strings.Join(items[:len(items)-1], ",")+"]", "["+strings.Join(items, ",")+`,"extra"]`, `[null]`, `[,]`)
		for i := range items {
			for _, candidate := range fastCandidates {
				changed := append([]string(nil), items...)
				changed[i] = candidate
				out = append(out, "["+strings.Join(changed, ",")+"]")
			}
		}
	}
	return out
}

// checkFastAgrees fails when the fast path accepts params that the general path refuses or
// decodes differently.
func checkFastAgrees(t *testing.T, m *compiledMethod, raw, bearer string) (fastTaken bool) {
	t.Helper()
	trimmed := []byte(strings.TrimSpace(raw))
	ptr := reflect.New(m.Params)
	if !m.fast.decode(ptr, trimmed, bearer) {
		return false
	}
	fast := ptr.Interface()
	general, werr := m.decodeGeneral(json.RawMessage(raw), bearer)
	if werr != nil {
		t.Errorf("%s %s (bearer %q): fast path accepted params the general path refuses: %v %s", m.Name, raw, bearer, werr.Message, *werr.Data)
		return true
	}
	if !reflect.DeepEqual(fast, general) {
		t.Errorf("%s %s (bearer %q): fast path decoded %#v, general path %#v", m.Name, raw, bearer, fast, general)
	}
	return true
}

// TestFastParamsAgree checks, for every method of the table, that whatever params the fast
// decoder accepts the general path accepts too and decodes to the same value.
func TestFastParamsAgree(t *testing.T) {
	for _, method := range Methods {
		m := compile(method)
		if m.fast == nil {
			t.Logf("%s: no fast plan; params always take the general path", m.Name)
			continue
		}
		taken := 0
		corpus := fastCorpus(m)
		for _, raw := range corpus {
			for _, bearer := range []string{"", "sdt_bearer", "bad\xffbearer"} {
				if checkFastAgrees(t, m, raw, bearer) {
					taken++
				}
			}
		}
		t.Logf("%s: fast path took %d of %d cases", m.Name, taken, 3*len(corpus))
	}
}

// TestFastParamsHotShapes checks that the requests of the hot path take the fast path, so a
// change that sends them back to the general path does not go unnoticed.
func TestFastParamsHotShapes(t *testing.T) {
	token := "sdt_" + strings.Repeat("A", 48)
	for _, tc := range []struct{ method, params, bearer string }{
		{"pingSession", `{"authToken":"` + token + `"}`, ""},
		{"pingSession", ``, token},
		{"setUserPreference", `["` + token + `",{"label":"TickleTime","value":"2026-01-01T00:00:00Z"}]`, ""},
		{"describeSessions", `{"authToken":"` + token + `","authTokens":["` + token + `"]}`, ""},
		{"getUserPreference", `{"sessionKey":"` + token + `","label":"theme"}`, ""},
		{"createSession", `{"username":"admin","password":"pw","permanentSession":"true","defaultResponseOptions":{"dataFormat":"objects"}}`, ""},
		{"authenticate", `["admin","pw"]`, ""},
		{"alterSession", `{"authToken":"` + token + `","idleConnectionTimeoutSeconds":60,"permanentSession":null}`, ""},
		{"rpc.discover", ``, ""},
	} {
		var m *compiledMethod
		for _, method := range Methods {
			if method.Name == tc.method {
				m = compile(method)
			}
		}
		if m == nil || m.fast == nil {
			t.Fatalf("%s: no fast plan", tc.method)
		}
		if !checkFastAgrees(t, m, tc.params, tc.bearer) {
			t.Errorf("%s %s: took the general path", tc.method, tc.params)
		}
	}
}

// FuzzFastParams checks the agreement of TestFastParamsAgree on arbitrary params.
func FuzzFastParams(f *testing.F) {
	var methods []*compiledMethod
	for _, method := range Methods {
		if m := compile(method); m.fast != nil {
			methods = append(methods, m)
		}
	}
	for i, m := range methods {
		for _, raw := range fastCorpus(m) {
			f.Add(uint8(i), raw, "")
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, raw, bearer string) {
		checkFastAgrees(t, methods[int(which)%len(methods)], raw, bearer)
	})
}

// TestQuickParamsReused checks that a quick method's params, which are reused, come back
// zeroed: decoding one request after another gives what decoding it alone gives.
func TestQuickParamsReused(t *testing.T) {
	for _, method := range Methods {
		m := compile(method)
		if !m.Quick || m.fast == nil {
			continue
		}
		corpus := fastCorpus(m)
		for _, first := range corpus {
			for _, second := range corpus {
				if p, werr := m.decode(json.RawMessage(first), ""); werr == nil {
					m.release(p)
				}
				got, gotErr := m.decode(json.RawMessage(second), "")
				want, wantErr := m.decodeGeneral(json.RawMessage(second), "")
				if (gotErr == nil) != (wantErr == nil) || gotErr == nil && !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s after %s decoded to %#v (%v), alone to %#v (%v)", m.Name, second, first, got, gotErr, want, wantErr)
				}
				if gotErr == nil {
					m.release(got)
				}
			}
		}
	}
}

// TestQuickTokenBorrowed checks that the fast decoder leaves the token of a quick method in
// the request's bytes (no copy, no allocation) and copies every other string: the token of
// other methods, and the other members of quick ones, such as a preference's label and value,
// which are stored.
func TestQuickTokenBorrowed(t *testing.T) {
	token := "sdt_" + strings.Repeat("A", 48)
	borrowed := 0
	for _, method := range Methods {
		m := compile(method)
		if m.fast == nil || m.fast.token < 0 {
			continue
		}
		for _, raw := range []string{
			fmt.Sprintf(`{%q:%q}`, m.TokenField, token),
			fmt.Sprintf(`{%q:%q,"label":"theme","value":"dark","bean":{"label":"theme","value":"dark"}}`, m.TokenField, token),
		} {
			params := []byte(raw)
			ptr := reflect.New(m.Params)
			if !m.fast.decode(ptr, params, "") {
				continue // members this method does not have
			}
			inParams := func(s string) bool {
				p := unsafe.Pointer(unsafe.StringData(s))
				return uintptr(p) >= uintptr(unsafe.Pointer(&params[0])) && uintptr(p) < uintptr(unsafe.Pointer(&params[0]))+uintptr(len(params))
			}
			var walk func(v reflect.Value, name string)
			walk = func(v reflect.Value, name string) {
				switch v.Kind() {
				case reflect.Pointer:
					if !v.IsNil() {
						walk(v.Elem(), name)
					}
				case reflect.Struct:
					for i := range v.NumField() {
						walk(v.Field(i), v.Type().Field(i).Name)
					}
				case reflect.String:
					s := v.String()
					if s == "" {
						return
					}
					isToken := s == token
					if want := isToken && m.Quick; inParams(s) != want {
						t.Errorf("%s %s: member %s aliases the params: %v, want %v", m.Name, raw, name, inParams(s), want)
					}
					if isToken && m.Quick {
						borrowed++
					}
				}
			}
			walk(ptr, "")
		}
	}
	if borrowed == 0 {
		t.Error("no quick method's token was borrowed")
	}
}

// TestNestedRequiredMembers checks that the members of a params object that are themselves
// required (no omitempty) are required there too: setUserPreference's bean needs its label
// and its value, on the fast path and the general one alike.
func TestNestedRequiredMembers(t *testing.T) {
	var m *compiledMethod
	for _, method := range Methods {
		if method.Name == "setUserPreference" {
			m = compile(method)
		}
	}
	token := "sdt_" + strings.Repeat("A", 48)
	for _, tc := range []struct{ params, field string }{
		{`["` + token + `",{"label":"theme"}]`, "bean.value"},
		{`["` + token + `",{"label":"theme","value":null}]`, "bean.value"},
		{`["` + token + `",{"value":"dark"}]`, "bean.label"},
		{`{"sessionKey":"` + token + `","bean":{"label":"theme"}}`, "bean.value"},
		{`["` + token + `",{"label":"theme","value":""}]`, ""}, // an empty value is a value
	} {
		_, werr := m.decode(json.RawMessage(tc.params), "")
		field := ""
		if werr != nil {
			var data struct{ Field string }
			if werr.Data != nil {
				_ = json.Unmarshal(*werr.Data, &data)
			}
			field = data.Field
			if werr.Code != jsonrpc2.CodeInvalidParams || field == "" {
				t.Errorf("%s: %v, want -32602", tc.params, werr)
			}
		}
		if field != tc.field {
			t.Errorf("%s: refused member %q, want %q", tc.params, field, tc.field)
		}
	}
}
