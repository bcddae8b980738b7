package main

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// tsDir is where the TypeScript sources live; tsReserved are names the hand-written files
// and the generated client export, which no schema type may take.
const tsDir = "sdk/typescript/src"

var tsReserved = map[string]bool{"SessiondClient": true, "SessiondError": true, "Transport": true,
	"JsonRpcError": true, "JsonRpcResponse": true, "TcpTransport": true, "HttpTransport": true,
	"HttpTransportOptions": true, "StdioTransport": true, "StdioTransportOptions": true, "TcpTransportOptions": true,
	"TransportError": true, "TransportClosedError": true, "TransportTimeoutError": true, "ConnectError": true,
	"ConnectionLostError": true, "ServerExitedError": true}

// Views of the model for the TypeScript templates.
type (
	tsFile struct {
		Header  string
		Types   []tsTypeView
		Methods []tsMethodView
		Errors  []tsErrorView
		// TypeNames are the types client.ts imports.
		TypeNames []string
	}
	tsTypeView struct {
		Doc     string
		Name    string
		Extends string // the base interface, or ""
		Fields  []tsFieldView
		Open    bool
	}
	tsFieldView struct {
		Doc      string
		Name     string
		Optional bool
		Type     string
	}
	tsMethodView struct {
		Doc        string
		Name       string
		Wire       string
		Params     string // "params: X", "params: X = {}" or ""
		Args       string // what call gets after the method name: ", params" or ""
		ResultType string
		Void       bool
	}
	tsErrorView struct {
		Doc   string
		Const string
		Code  int
	}
)

func renderTypeScript(a *api) (map[string][]byte, error) {
	files := map[string][]byte{}
	var types tsFile
	for _, nt := range a.Types {
		if tsReserved[nt.Name] {
			return nil, fmt.Errorf("typescript: type %s would clash with a name of the SDK", nt.Name)
		}
		types.Types = append(types.Types, tsType(nt))
	}
	if err := tsRender(files, "types.ts", "types.ts.tmpl", types); err != nil {
		return nil, err
	}

	var errs tsFile
	for _, e := range a.Errors {
		doc := fmt.Sprintf("Code %d", e.Code)
		if reason := dataReason(e); reason != "" {
			doc += fmt.Sprintf(" (data.reason %q)", reason)
		}
		doc += ": " + sentence(firstNonEmpty(e.When, e.Message))
		errs.Errors = append(errs.Errors, tsErrorView{Doc: tsDoc(doc, "  "), Const: constName(e.Reason), Code: e.Code})
	}
	if err := tsRender(files, "errors.ts", "errors.ts.tmpl", errs); err != nil {
		return nil, err
	}

	var client tsFile
	used := map[string]bool{}
	for _, m := range a.Methods {
		v := tsMethod(m)
		client.Methods = append(client.Methods, v)
		if m.ParamsType != nil {
			used[m.ParamsType.Name] = true
		}
		if t := m.Result; !m.resultEmpty {
			collectNamed(t, used)
		}
	}
	client.TypeNames = slices.Sorted(maps.Keys(used))
	if err := tsRender(files, "client.ts", "client.ts.tmpl", client); err != nil {
		return nil, err
	}
	return files, nil
}

// collectNamed adds the named types t refers to.
func collectNamed(t *typeRef, into map[string]bool) {
	switch t.Kind {
	case kindNamed:
		into[t.Named.Name] = true
	case kindArray:
		collectNamed(t.Elem, into)
	case kindUnion:
		for _, alt := range t.Alts {
			collectNamed(alt, into)
		}
	}
}

func tsType(nt *namedType) tsTypeView {
	v := tsTypeView{Doc: tsDoc(firstNonEmpty(nt.Description, nt.Name+" is an object of the sessiond API."), ""), Name: nt.Name, Open: nt.Open}
	if nt.Base != nil {
		v.Extends = nt.Base.Name
	}
	for _, f := range nt.Fields {
		if f.Inherited {
			continue // declared by the base; one declared anew may be required here, as extends allows
		}
		doc := f.Description
		if f.Token {
			doc = strings.TrimSpace(sentence(doc) + " It may be left out over HTTP when the transport sends a bearer token.")
		}
		v.Fields = append(v.Fields, tsFieldView{Doc: tsDoc(doc, "  "), Name: f.Name, Optional: !f.Required || f.Token, Type: tsTypeOf(f.Type)})
	}
	return v
}

// tsTypeOf is the TypeScript type of a value. Times stay RFC 3339 strings, as JSON has them.
func tsTypeOf(t *typeRef) string {
	var s string
	switch t.Kind {
	case kindString:
		if len(t.Enum) > 0 {
			var alts []string
			for _, e := range t.Enum {
				alts = append(alts, strconv.Quote(e))
			}
			s = strings.Join(alts, " | ")
		} else {
			s = "string"
		}
	case kindTime:
		s = "string"
	case kindInteger, kindNumber:
		s = "number"
	case kindBoolean:
		s = "boolean"
	case kindArray:
		elem := tsTypeOf(t.Elem)
		if strings.Contains(elem, " ") {
			s = "Array<" + elem + ">"
		} else {
			s = elem + "[]"
		}
	case kindMap:
		s = "Record<string, unknown>"
	case kindNamed:
		s = t.Named.Name
	case kindUnion:
		var alts []string
		for _, alt := range t.Alts {
			alts = append(alts, tsTypeOf(alt))
		}
		s = strings.Join(alts, " | ")
	default:
		s = "unknown"
	}
	if t.Nullable && s != "unknown" {
		s += " | null"
	}
	return s
}

func tsMethod(m *method) tsMethodView {
	doc := sentence(m.Summary)
	if m.Description != "" {
		doc += "\n\n" + sentence(m.Description)
	}
	if len(m.Errors) > 0 {
		var names []string
		for _, e := range m.Errors {
			names = append(names, fmt.Sprintf("%s (%d)", constName(e.Reason), e.Code))
		}
		doc += "\n\n@throws {SessiondError} " + strings.Join(names, ", ") + "."
	}
	v := tsMethodView{Doc: tsDoc(doc, "  "), Name: m.Ident, Wire: strconv.Quote(m.Name)}
	if m.ParamsType != nil {
		allOptional := true
		var order []string
		for _, f := range m.Params {
			if f.Required && !f.Token {
				allOptional = false
			}
			order = append(order, strconv.Quote(f.Name))
		}
		v.Params = "params: " + m.ParamsType.Name
		if allOptional {
			v.Params += " = {}"
		}
		v.Args = ", params"
		if m.Positional {
			v.Args = ", byPosition(params, [" + strings.Join(order, ", ") + "])"
		}
	}
	if m.resultEmpty {
		v.Void = true
	} else {
		v.ResultType = tsTypeOf(m.Result)
	}
	return v
}

// tsDoc renders text as a JSDoc comment indented by indent, or "" for no text.
func tsDoc(text, indent string) string {
	lines := wrap(text, 100-len(indent)-3)
	if len(lines) == 0 {
		return ""
	}
	if len(lines) == 1 && len(lines[0])+len(indent)+7 <= 100 {
		return indent + "/** " + strings.ReplaceAll(lines[0], "*/", "*\\/") + " */\n"
	}
	var b strings.Builder
	b.WriteString(indent + "/**\n")
	for _, line := range lines {
		line = strings.ReplaceAll(line, "*/", "*\\/")
		if line == "" {
			b.WriteString(indent + " *\n")
		} else {
			b.WriteString(indent + " * " + line + "\n")
		}
	}
	b.WriteString(indent + " */\n")
	return b.String()
}

func tsRender(files map[string][]byte, name, tmpl string, f tsFile) error {
	f.Header = "// " + generatedBy
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, tmpl, f); err != nil {
		return fmt.Errorf("%s/%s: %w", tsDir, name, err)
	}
	files[tsDir+"/"+name] = tidy(buf.Bytes(), 1)
	return nil
}

// tidy trims trailing spaces, allows at most maxBlank blank lines in a row and none at the
// start, and ends the file with one newline: the templates need not be careful about
// whitespace.
func tidy(src []byte, maxBlank int) []byte {
	var out []string
	blank := 0
	for _, line := range strings.Split(string(src), "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" {
			if blank < maxBlank && len(out) > 0 {
				out = append(out, "")
			}
			blank++
			continue
		}
		blank = 0
		out = append(out, line)
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return []byte(strings.Join(out, "\n") + "\n")
}
