package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// goDir is where the Go SDK lives; goReserved are its hand-written files, which no method
// family may take the name of.
const goDir = "sdk/go"

var goReserved = map[string]bool{"client": true, "doc": true, "errors": true, "http": true,
	"stdio": true, "stream": true, "tcp": true, "types": true}

// goWithoutTokenNames names the methods that call a method of optional token without one
// (see goWithoutToken); a method not listed gets its own name with "WithoutToken".
var goWithoutTokenNames = map[string]string{"pingSession": "Ping"}

// goClientMethods are the hand-written methods of Client, which no generated one may take the
// name of.
var goClientMethods = map[string]bool{"Call": true, "Close": true}

// Views of the model for the Go templates: everything spelled in Go already.
type (
	goFile struct {
		Header  string
		Imports []string
		Types   []goTypeView
		Methods []goMethodView
		Errors  []goErrorView
	}
	goTypeView struct {
		Doc      string
		Name     string
		Fields   []goFieldView
		Open     bool
		Declared string // the declared members as a Go list of strings, for open types
	}
	goFieldView struct {
		Doc  string
		Name string
		Type string // "" for an embedded type, Name
		Tag  string
	}
	goMethodView struct {
		Doc        string
		Name       string
		Wire       string
		ParamsType string
		Args       string
		// Exactly one of Empty, Deref (result is *ResultElem) or a plain ResultType.
		Empty      bool
		Deref      bool
		ResultType string
		ResultElem string
	}
	goErrorView struct {
		Doc     string
		Name    string
		Code    int
		Message string
		Data    string
	}
)

func renderGo(a *api) (map[string][]byte, error) {
	files := map[string][]byte{}
	var types []goTypeView
	for _, nt := range a.Types {
		if nt.owner == nil && !nt.Params {
			types = append(types, goType(nt))
		}
	}
	if err := goRender(files, "types.go", goFile{Types: types}); err != nil {
		return nil, err
	}
	var errs []goErrorView
	for _, e := range a.Errors {
		doc := fmt.Sprintf("%s is code %d", goErrName(e), e.Code)
		if reason := dataReason(e); reason != "" {
			doc += fmt.Sprintf(" (data.reason %q)", reason)
		}
		doc += ": " + sentence(firstNonEmpty(e.When, e.Message))
		errs = append(errs, goErrorView{Doc: comment(doc, "\t// ", 100), Name: goErrName(e), Code: e.Code,
			Message: e.Message, Data: goErrorData(e)})
	}
	if err := goRender(files, "errors.go", goFile{Errors: errs}); err != nil {
		return nil, err
	}
	taken := maps.Clone(goClientMethods)
	for _, family := range a.Families {
		if goReserved[family] {
			return nil, fmt.Errorf("go: family %q would overwrite the hand-written %s/%s.go", family, goDir, family)
		}
		var f goFile
		for _, m := range a.Methods {
			if m.Family != family {
				continue
			}
			if m.ParamsType != nil {
				f.Types = append(f.Types, goType(m.ParamsType))
			}
			for _, nt := range m.ownedTypes {
				f.Types = append(f.Types, goType(nt))
			}
			f.Methods = append(f.Methods, goMethod(m))
			if goOptionalToken(m) != nil {
				without, err := goWithoutToken(m)
				if err != nil {
					return nil, fmt.Errorf("go: %s: %w", m.Name, err)
				}
				f.Methods = append(f.Methods, without)
			}
		}
		for _, v := range f.Methods {
			if taken[v.Name] {
				return nil, fmt.Errorf("go: two methods of Client would be named %s", v.Name)
			}
			taken[v.Name] = true
		}
		if err := goRender(files, family+".go", f); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func goErrName(e *apiError) string { return "Err" + goName(e.Reason) }

// goErrorData is the data member of an error as a Go expression, or "" for none.
func goErrorData(e *apiError) string {
	if e.Data == "" {
		return ""
	}
	if !strings.Contains(e.Data, "`") {
		return "`" + e.Data + "`"
	}
	return strconv.Quote(e.Data)
}

func goType(nt *namedType) goTypeView {
	v := goTypeView{Doc: comment(renameLead(nt.Description, nt.Name, nt.Name), "// ", 100), Name: nt.Name, Open: nt.Open}
	if v.Doc == "" {
		v.Doc = comment(nt.Name+" is an object of the sessiond API.", "// ", 100)
	}
	var declared []string
	for _, f := range nt.Fields {
		if f.Inherited || f.Redeclares != nil {
			continue // a member of the embedded base
		}
		name := goName(f.Name)
		doc := renameLead(f.Description, f.Name, name)
		if enum := f.Type.first().Enum; len(enum) > 0 && !mentionsAll(doc, enum) {
			doc = strings.TrimSpace(sentence(doc) + " One of " + quoteList(enum) + ".")
		}
		switch {
		case f.Token && !f.Required && nt.owner != nil:
			doc = strings.TrimSpace(sentence(doc) + fmt.Sprintf(" It is always sent, so an empty %s is an invalid "+
				"token (error 12031), never none: %s calls %s without a token.", name, goWithoutTokenName(nt.owner), nt.owner.Name))
		case f.Token:
			doc = strings.TrimSpace(sentence(doc) + " It may be left empty over HTTP when the transport sends a bearer token.")
		}
		typ, omit := goFieldType(f, nt.Params)
		tag := f.Name + omit
		v.Fields = append(v.Fields, goFieldView{Doc: comment(doc, "\t// ", 100), Name: name, Type: typ,
			Tag: "`json:" + strconv.Quote(tag) + "`"})
		declared = append(declared, strconv.Quote(f.Name))
	}
	v.Declared = strings.Join(declared, ", ")
	if nt.Base != nil {
		v.Fields = append(v.Fields, goEmbedded(nt))
	}
	return v
}

// goEmbedded is the field that embeds nt's base, whose members encoding/json reads and writes
// as nt's own. A member nt declares anew is left to the base's field, not shadowed by one of
// nt's: a shadowing field would take the value and leave the base's empty, so the embedded
// base, used where the base is wanted, would lack it. The field's doc says what nt adds.
func goEmbedded(nt *namedType) goFieldView {
	var doc []string
	for _, f := range nt.Fields {
		if f.Redeclares == nil {
			continue
		}
		name := nt.Base.Name + "." + goName(f.Name)
		text := renameLead(f.Description, f.Name, name)
		switch rest, ok := strings.CutPrefix(text, name+" is "); {
		case f.Required && !f.Redeclares.Required && ok:
			text = name + " is always set here: " + rest
		case f.Required && !f.Redeclares.Required:
			text = strings.TrimSpace(name + " is always set here. " + text)
		}
		doc = append(doc, sentence(text))
	}
	return goFieldView{Doc: comment(strings.Join(doc, " "), "\t// ", 100), Name: nt.Base.Name}
}

// goFieldType is a member's Go type and the option of its JSON tag that leaves it out.
// Required members are values (pointers when nullable), never left out. Optional ones are
// left out when unset: pointers where the zero value means something (numbers, booleans,
// times, objects, and in params every scalar, so that an empty string can be sent), left out
// when nil (omitempty); in results strings as they are, left out when empty; slices and maps
// as they are, left out only when nil (omitzero), so that an empty one is sent: "roles": []
// means none. The token member is a plain string: an empty token is never valid. Where the
// method needs a token, it is left out when empty, for an HTTP bearer token to stand in for
// it; where the token is optional, leaving it out means none, so it is always sent: an empty
// token given by mistake (a request without one, say) fails as invalid instead of passing
// for none. goWithoutToken's method sends none.
func goFieldType(f *field, params bool) (typ, omit string) {
	t := f.Type.first()
	base := goBase(t)
	switch {
	case f.Token && !f.Required:
		return "string", ""
	case f.Token:
		return "string", ",omitempty"
	case f.Required:
		return goNullable(t, base), ""
	case t.Kind == kindArray || t.Kind == kindMap:
		return base, ",omitzero"
	case t.Kind == kindAny:
		return base, ",omitempty"
	case t.Kind == kindString && !params && !t.Nullable:
		return base, ",omitempty"
	default:
		return "*" + base, ",omitempty"
	}
}

// goBase is the Go type of a value, ignoring null.
func goBase(t *typeRef) string {
	t = t.first()
	switch t.Kind {
	case kindString:
		return "string"
	case kindInteger:
		return "int"
	case kindNumber:
		return "float64"
	case kindBoolean:
		return "bool"
	case kindTime:
		return "time.Time"
	case kindArray:
		return "[]" + goNullable(t.Elem.first(), goBase(t.Elem))
	case kindMap:
		return "map[string]any"
	case kindNamed:
		return t.Named.Name
	}
	return "any"
}

// goNullable makes base a pointer when t may be null and base cannot hold nil itself.
func goNullable(t *typeRef, base string) string {
	if t.Nullable && t.Kind != kindArray && t.Kind != kindMap && t.Kind != kindAny {
		return "*" + base
	}
	return base
}

func goMethod(m *method) goMethodView {
	name := exportName(m.Ident)
	doc := name + " calls " + m.Name
	if m.Summary != "" {
		doc += ": " + lowerFirst(sentence(m.Summary))
	} else {
		doc += "."
	}
	if m.Description != "" {
		doc += "\n\n" + sentence(m.Description)
	}
	if token := goOptionalToken(m); token != nil {
		doc += fmt.Sprintf("\n\nThe Go client always sends params.%s, so an empty one is an invalid token, never "+
			"none; %s calls %s without a token.", goName(token.Name), goWithoutTokenName(m), m.Name)
	}
	doc += goErrorsDoc(m)
	v := goMethodView{Doc: comment(doc, "// ", 100), Name: name, Wire: strconv.Quote(m.Name), Args: "nil"}
	if m.ParamsType != nil {
		v.ParamsType = m.ParamsType.Name
		v.Args = "params"
		if m.Positional {
			var values, present []string
			for _, f := range m.Params {
				fieldName := "params." + goName(f.Name)
				values = append(values, fieldName)
				typ, omit := goFieldType(f, true)
				switch {
				case omit == "":
					present = append(present, "true")
				case typ == "string":
					present = append(present, fieldName+` != ""`)
				default:
					present = append(present, fieldName+" != nil")
				}
			}
			v.Args = fmt.Sprintf("[]any{%s}", strings.Join(values, ", "))
			if slices.ContainsFunc(present, func(p string) bool { return p != "true" }) {
				v.Args = fmt.Sprintf("byPosition(params, %s, []bool{%s})", v.Args, strings.Join(present, ", "))
			}
		}
	}
	t := m.Result.first()
	base := goBase(t)
	switch {
	case m.resultEmpty:
		v.Empty = true
	case t.Kind == kindNamed && !t.Nullable:
		v.Deref, v.ResultType, v.ResultElem = true, "*"+base, base
	default:
		v.ResultType = goNullable(t, base)
	}
	return v
}

// goErrorsDoc is the paragraph of a method's doc that lists its errors, or "".
func goErrorsDoc(m *method) string {
	if len(m.Errors) == 0 {
		return ""
	}
	var names []string
	for _, e := range m.Errors {
		names = append(names, fmt.Sprintf("%s (%d)", goErrName(e), e.Code))
	}
	return "\n\nErrors: " + strings.Join(names, ", ") + "."
}

// goOptionalToken is the token member of m when m takes a token but does not need one
// (pingSession), or nil.
func goOptionalToken(m *method) *field {
	for _, f := range m.Params {
		if f.Token && !f.Required {
			return f
		}
	}
	return nil
}

func goWithoutTokenName(m *method) string {
	if name, ok := goWithoutTokenNames[m.Name]; ok {
		return name
	}
	return exportName(m.Ident) + "WithoutToken"
}

// goWithoutToken is the method that calls m, a method of optional token, without one, with
// params {}. m's own method always sends its token, so it cannot. Only a method whose one
// param is the token has one: others would need a second params type.
func goWithoutToken(m *method) (goMethodView, error) {
	token := goOptionalToken(m)
	if len(m.Params) != 1 {
		return goMethodView{}, fmt.Errorf("a method whose token is optional may have no other param (%s "+
			"calls it without a token)", goWithoutTokenName(m))
	}
	v := goMethod(m)
	v.Name = goWithoutTokenName(m)
	v.ParamsType = ""
	v.Args = "struct{}{}"
	doc := fmt.Sprintf("%s calls %s without a token, with params {}. %s always sends its %s, so that an empty "+
		"one fails as an invalid token rather than passing for none.", v.Name, m.Name, exportName(m.Ident), goName(token.Name))
	doc += "\n\nOver HTTP, a transport's BearerToken stands in for the missing token: the server then " +
		"checks the bearer token, and an invalid one is an invalid token too."
	doc += goErrorsDoc(m)
	v.Doc = comment(doc, "// ", 100)
	return v, nil
}

// mentionsAll reports whether text quotes every value already.
func mentionsAll(text string, values []string) bool {
	for _, v := range values {
		if !strings.Contains(text, strconv.Quote(v)) {
			return false
		}
	}
	return true
}

func quoteList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	if len(quoted) == 1 {
		return quoted[0]
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}

// goRender executes the template for a Go file, drops the imports it does not use and
// formats it.
func goRender(files map[string][]byte, name string, f goFile) error {
	f.Header = "// " + generatedBy
	f.Imports = []string{"context", "encoding/json", "time"}
	var buf bytes.Buffer
	tmpl := "family.go.tmpl"
	switch name {
	case "types.go":
		tmpl = "types.go.tmpl"
	case "errors.go":
		tmpl = "errors.go.tmpl"
	}
	if err := templates.ExecuteTemplate(&buf, tmpl, f); err != nil {
		return fmt.Errorf("%s/%s: %w", goDir, name, err)
	}
	src, err := pruneImports(buf.Bytes())
	if err != nil {
		return fmt.Errorf("%s/%s: %w\n%s", goDir, name, err, buf.Bytes())
	}
	files[goDir+"/"+name] = src
	return nil
}

// pruneImports removes the imports a Go file does not use and formats it.
func pruneImports(src []byte) ([]byte, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "", src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	ast.Inspect(file, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		}
		return true
	})
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.IMPORT {
			continue
		}
		specs := gen.Specs[:0]
		for _, spec := range gen.Specs {
			path, _ := strconv.Unquote(spec.(*ast.ImportSpec).Path.Value)
			if used[path[strings.LastIndex(path, "/")+1:]] {
				specs = append(specs, spec)
			}
		}
		gen.Specs = specs
	}
	decls := file.Decls[:0]
	for _, decl := range file.Decls {
		if gen, ok := decl.(*ast.GenDecl); ok && gen.Tok == token.IMPORT && len(gen.Specs) == 0 {
			continue
		}
		decls = append(decls, decl)
	}
	file.Decls = decls
	var out bytes.Buffer
	if err := format.Node(&out, fset, file); err != nil {
		return nil, err
	}
	// format.Node keeps the import block's parentheses and blank lines; a second pass through
	// format.Source normalises what pruning left behind.
	return format.Source(out.Bytes())
}
