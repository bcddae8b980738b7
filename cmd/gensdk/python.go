package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// pyDir is the Python package; pyReserved are the names its hand-written module and the
// generated ones define, which no schema type may take.
const pyDir = "sdk/python/sessiond"

var pyReserved = map[string]bool{"Client": true, "SessiondError": true, "Transport": true,
	"TcpTransport": true, "HttpTransport": true, "StdioTransport": true, "TransportClosedError": true,
	"ServerExitedError": true}

// Views of the model for the Python templates.
type (
	pyFile struct {
		Header  string
		Types   []pyTypeView
		Methods []pyMethodView
		Errors  []pyErrorView
		// Models are the classes of models.py; Names are every public name, for __all__.
		Models []string
	}
	pyTypeView struct {
		Doc  string
		Name string
		Base string // the dataclass this one subclasses, or ""
		// Fields are every member, in from_wire and to_wire; the class declares those not
		// Inherited from Base.
		Fields   []pyFieldView
		Open     bool
		Declared string // a Python tuple of the declared member names, for open types
		// DataInit starts to_wire: data with the required members (and Extra for open types).
		DataInit string
	}
	pyFieldView struct {
		Doc       string
		Name      string // snake_case
		Wire      string
		Hint      string
		Default   string // " = None" for optional members
		FromWire  string // an expression reading the member from data
		ToWire    string // an expression writing self.<Name>
		Optional  bool
		Inherited bool
	}
	pyMethodView struct {
		Doc       string
		Name      string
		Wire      string
		Args      []pyArgView
		Return    string
		Signature string // "def name(...) -> Return:", on several lines if long
		// ParamsInit builds params from the members always sent; Optional are those sent
		// when not None.
		ParamsInit string
		Optional   []pyArgView
		// Order is the position order for NetX methods, as a Python tuple; "" for by name.
		Order  string
		Result string // an expression turning result into the return value
		Void   bool
	}
	pyArgView struct {
		Name    string
		Wire    string
		Hint    string
		Default string
		ToWire  string
	}
	pyErrorView struct {
		Doc   string
		Class string
		Code  int
	}
)

func renderPython(a *api) (map[string][]byte, error) {
	files := map[string][]byte{}
	var models pyFile
	for _, nt := range basesFirst(a.Types) {
		if nt.Params {
			continue // params are keyword arguments in Python
		}
		if pyReserved[nt.Name] {
			return nil, fmt.Errorf("python: type %s would clash with a name of the SDK", nt.Name)
		}
		v, err := pyType(nt)
		if err != nil {
			return nil, err
		}
		models.Types = append(models.Types, v)
		models.Models = append(models.Models, nt.Name)
	}
	if err := pyRender(files, "models.py", "models.py.tmpl", models); err != nil {
		return nil, err
	}

	var errs pyFile
	for _, e := range a.Errors {
		doc := fmt.Sprintf("Code %d", e.Code)
		if reason := dataReason(e); reason != "" {
			doc += fmt.Sprintf(" (data.reason %q)", reason)
		}
		doc += ": " + sentence(firstNonEmpty(e.When, e.Message))
		errs.Errors = append(errs.Errors, pyErrorView{Doc: pyDocstring(doc, "    "), Class: pyErrorClass(e), Code: e.Code})
	}
	if err := pyRender(files, "errors.py", "errors.py.tmpl", errs); err != nil {
		return nil, err
	}

	var client pyFile
	client.Models = models.Models
	for _, m := range a.Methods {
		v, err := pyMethod(m)
		if err != nil {
			return nil, err
		}
		client.Methods = append(client.Methods, v)
	}
	if err := pyRender(files, "client.py", "client.py.tmpl", client); err != nil {
		return nil, err
	}

	var init pyFile
	init.Models = models.Models
	init.Errors = errs.Errors
	if err := pyRender(files, "__init__.py", "init.py.tmpl", init); err != nil {
		return nil, err
	}
	return files, nil
}

// pyErrorClass names an error's exception class: "invalidAuthToken" → InvalidAuthTokenError,
// "internalError" → InternalError.
func pyErrorClass(e *apiError) string {
	name := exportName(e.Reason)
	if !strings.HasSuffix(name, "Error") {
		name += "Error"
	}
	return name
}

func pyType(nt *namedType) (pyTypeView, error) {
	v := pyTypeView{Doc: pyDocstring(firstNonEmpty(nt.Description, nt.Name+" is an object of the sessiond API."), "    "),
		Name: nt.Name, Open: nt.Open}
	if nt.Base != nil {
		v.Base = nt.Base.Name
	}
	var declared, required []string
	if nt.Open {
		required = append(required, "**self.extra")
	}
	for _, f := range nt.Fields {
		name := snakeName(f.Name)
		t := f.Type.first()
		fv := pyFieldView{Doc: pyDocstring(renameLead(f.Description, f.Name, name), "    "), Name: name, Wire: strconv.Quote(f.Name),
			Hint: pyHint(t), ToWire: pyToWire("self."+name, t, 0, ""), Inherited: f.Inherited}
		get := "data[" + fv.Wire + "]"
		fv.FromWire = pyFromWire(get, t, 0)
		if !f.Required {
			fv.Optional = true
			fv.Default = " = None"
			if !t.Nullable {
				fv.Hint += " | None"
			}
			get = "data.get(" + fv.Wire + ")"
			if conv := pyFromWire("data["+fv.Wire+"]", withNull(t, false), 0); conv != "data["+fv.Wire+"]" {
				fv.FromWire = "None if " + get + " is None else " + conv
			} else {
				fv.FromWire = get
			}
		}
		if !fv.Optional {
			required = append(required, fv.Wire+": "+fv.ToWire)
		}
		if f.Required && f.Redeclares != nil && !f.Redeclares.Required {
			// A bare annotation would take the base's class attribute, its default None, for
			// its own default: field() without one makes the member required here.
			fv.Default = " = field()"
		}
		v.Fields = append(v.Fields, fv)
		declared = append(declared, fv.Wire)
	}
	v.DataInit = pyCall("data: dict[str, Any] = {", required, "}", "        ")
	if len(declared) == 1 {
		v.Declared = "(" + declared[0] + ",)"
	} else {
		v.Declared = "(" + strings.Join(declared, ", ") + ")"
	}
	return v, nil
}

// basesFirst orders types so that each comes after its base, as a Python class must, and
// otherwise keeps their order.
func basesFirst(types []*namedType) []*namedType {
	var out []*namedType
	placed := map[*namedType]bool{}
	var place func(nt *namedType)
	place = func(nt *namedType) {
		if placed[nt] {
			return
		}
		placed[nt] = true
		if nt.Base != nil {
			place(nt.Base)
		}
		out = append(out, nt)
	}
	for _, nt := range types {
		place(nt)
	}
	return out
}

// withNull returns t with Nullable set to nullable.
func withNull(t *typeRef, nullable bool) *typeRef {
	c := *t
	c.Nullable = nullable
	return &c
}

// pyHint is the type hint of a value. Unions take their first alternative.
func pyHint(t *typeRef) string {
	t = t.first()
	var s string
	switch t.Kind {
	case kindString:
		if len(t.Enum) > 0 {
			var alts []string
			for _, e := range t.Enum {
				alts = append(alts, strconv.Quote(e))
			}
			s = "Literal[" + strings.Join(alts, ", ") + "]"
		} else {
			s = "str"
		}
	case kindTime:
		s = "datetime"
	case kindInteger:
		s = "int"
	case kindNumber:
		s = "float"
	case kindBoolean:
		s = "bool"
	case kindArray:
		s = "list[" + pyHint(t.Elem) + "]"
	case kindMap:
		s = "dict[str, Any]"
	case kindNamed:
		s = t.Named.Name
	default:
		return "Any"
	}
	if t.Nullable {
		s += " | None"
	}
	return s
}

// pyFromWire is an expression turning the JSON value expr into the Python value of t.
func pyFromWire(expr string, t *typeRef, depth int) string {
	t = t.first()
	var conv string
	switch t.Kind {
	case kindTime:
		conv = "_parse_time(" + expr + ")"
	case kindNamed:
		conv = t.Named.Name + ".from_wire(" + expr + ")"
	case kindArray:
		item := "item" + strings.Repeat("_", depth)
		if inner := pyFromWire(item, t.Elem, depth+1); inner != item {
			conv = "[" + inner + " for " + item + " in " + expr + "]"
		} else {
			conv = "list(" + expr + ")"
		}
	case kindMap:
		conv = "dict(" + expr + ")"
	default:
		return expr
	}
	if t.Nullable {
		return "None if " + expr + " is None else " + conv
	}
	return conv
}

// pyToWire is an expression turning the Python value expr of t into its JSON value. param,
// when not empty, is the argument expr holds: a list of it is read through _list, which
// raises TypeError naming it for a str or bytes (which list() would split into characters).
func pyToWire(expr string, t *typeRef, depth int, param string) string {
	t = t.first()
	var conv string
	switch t.Kind {
	case kindTime:
		conv = "_format_time(" + expr + ")"
	case kindNamed:
		conv = expr + ".to_wire()"
	case kindArray:
		item := "item" + strings.Repeat("_", depth)
		inner := pyToWire(item, t.Elem, depth+1, "")
		switch {
		case param != "" && inner != item:
			conv = "[" + inner + " for " + item + " in _list(" + strconv.Quote(param) + ", " + expr + ")]"
		case param != "":
			conv = "_list(" + strconv.Quote(param) + ", " + expr + ")"
		case inner != item:
			conv = "[" + inner + " for " + item + " in " + expr + "]"
		default:
			conv = "list(" + expr + ")"
		}
	case kindMap:
		conv = "dict(" + expr + ")"
	default:
		return expr
	}
	if t.Nullable {
		return "None if " + expr + " is None else " + conv
	}
	return conv
}

func pyMethod(m *method) (pyMethodView, error) {
	v := pyMethodView{Name: snakeName(m.Ident), Wire: strconv.Quote(m.Name)}
	doc := sentence(m.Summary)
	if m.Description != "" {
		doc += "\n\n" + sentence(m.Description)
	}
	var args, order, required, signature []string
	for _, f := range m.Params {
		name := snakeName(f.Name)
		t := f.Type.first()
		a := pyArgView{Name: name, Wire: strconv.Quote(f.Name), Hint: pyHint(t), ToWire: pyToWire(name, t, 0, name)}
		optional := !f.Required || f.Token
		if optional {
			if !t.Nullable {
				a.Hint += " | None"
			}
			a.Default = " = None"
			if f.Required && t.Nullable {
				return v, fmt.Errorf("python: %s: param %s may be null and is required; None cannot mean both", m.Name, f.Name)
			}
			a.ToWire = pyToWire(name, withNull(t, false), 0, name)
			v.Optional = append(v.Optional, a)
		} else {
			required = append(required, a.Wire+": "+a.ToWire)
		}
		v.Args = append(v.Args, a)
		order = append(order, a.Wire)
		desc := f.Description
		for _, lead := range []string{f.Name + " is ", f.Name + " are ", f.Name + ": "} {
			if rest, ok := strings.CutPrefix(desc, lead); ok {
				desc = exportName(rest)
				break
			}
		}
		desc = renameLead(desc, f.Name, name)
		if f.Token {
			desc = strings.TrimSpace(sentence(desc) + " It may be left out over HTTP when the transport sends a bearer token.")
		}
		if desc != "" {
			args = append(args, name+": "+sentence(desc))
		}
	}
	if len(args) > 0 {
		doc += "\n\nArgs:\n" + strings.Join(args, "\n")
	}
	if len(m.Errors) > 0 {
		var raises []string
		for _, e := range m.Errors {
			raises = append(raises, fmt.Sprintf("%s: code %d.", pyErrorClass(e), e.Code))
		}
		doc += "\n\nRaises:\n" + strings.Join(raises, "\n")
	}
	v.Doc = pyDocstring(doc, "        ")
	if m.Positional && len(order) > 0 {
		v.Order = "(" + strings.Join(order, ", ")
		if len(order) == 1 {
			v.Order += ","
		}
		v.Order += ")"
	}
	if m.resultEmpty {
		v.Void, v.Return = true, "None"
	} else {
		v.Return = pyHint(m.Result)
		v.Result = pyFromWire("result", m.Result, 0)
	}
	for _, a := range v.Args {
		signature = append(signature, a.Name+": "+a.Hint+a.Default)
	}
	v.Signature = pyCall("def "+v.Name, append([]string{"self"}, withStar(signature)...), " -> "+v.Return+":", "    ")
	if len(v.Args) > 0 {
		v.ParamsInit = pyCall("params: dict[str, Any] = {", required, "}", "        ")
	}
	return v, nil
}

// withStar makes the arguments after self keyword-only.
func withStar(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	return append([]string{"*"}, args...)
}

// pyCall lays out head(items...)tail, or for a dict head{items}tail (head ending in "{"), on
// one line when it fits in 100 columns and otherwise one item per line, indented once more
// than indent, with a trailing comma.
func pyCall(head string, items []string, tail, indent string) string {
	open, closing := "(", ")"
	if strings.HasSuffix(head, "{") {
		head, open, closing = strings.TrimSuffix(head, "{"), "{", ""
	}
	line := head + open + strings.Join(items, ", ") + closing + tail
	if len(indent)+len(line) <= 100 || len(items) == 0 {
		return line
	}
	var b strings.Builder
	b.WriteString(head + open + "\n")
	for _, item := range items {
		b.WriteString(indent + "    " + item + ",\n")
	}
	b.WriteString(indent + closing + tail)
	return b.String()
}

// pyDocstring renders text as the body of a docstring indented by indent, wrapped, with
// Google-style sections ("Args:", "Raises:") whose entries are indented once more. It starts
// with `"""` and ends with `"""` and a newline.
func pyDocstring(text, indent string) string {
	if strings.TrimSpace(text) == "" {
		return ""
	}
	text = strings.ReplaceAll(strings.ReplaceAll(text, `\`, `\\`), `"""`, `\"\"\"`)
	var lines []string
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			lines = append(lines, "")
		}
		rows := strings.Split(para, "\n")
		if len(rows) > 1 && strings.HasSuffix(rows[0], ":") && !strings.Contains(rows[0], " ") {
			// A section: its heading, then one entry per row, wrapped with a hanging indent.
			lines = append(lines, rows[0])
			for _, entry := range rows[1:] {
				for j, line := range wrap(entry, 100-len(indent)-8) {
					if j > 0 {
						line = "    " + line
					}
					lines = append(lines, "    "+line)
				}
			}
			continue
		}
		lines = append(lines, wrap(para, 100-len(indent)-3)...)
	}
	if len(lines) == 1 && len(indent)+len(lines[0])+6 <= 100 {
		return `"""` + lines[0] + `"""`
	}
	var b strings.Builder
	b.WriteString(`"""` + lines[0])
	for _, line := range lines[1:] {
		b.WriteString("\n")
		if line != "" {
			b.WriteString(indent + line)
		}
	}
	b.WriteString("\n" + indent + `"""`)
	return b.String()
}

func pyRender(files map[string][]byte, name, tmpl string, f pyFile) error {
	f.Header = "# " + generatedBy
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, tmpl, f); err != nil {
		return fmt.Errorf("%s/%s: %w", pyDir, name, err)
	}
	files[pyDir+"/"+name] = pyPruneImports(tidy(buf.Bytes(), 2))
	return nil
}

// pyImport is an import line of a generated module: "from X import a, b" or the same with
// the names in parentheses, one per line.
var pyImport = regexp.MustCompile(`(?m)^from (\S+) import (?:\(([^)]*)\)|(.*))\n`)

// pyPruneImports drops the names of "from … import …" lines that the module does not use
// elsewhere, and the lines left with none. The templates import everything they might need.
func pyPruneImports(src []byte) []byte {
	text := string(src)
	var body strings.Builder
	last := 0
	for _, m := range pyImport.FindAllStringSubmatchIndex(text, -1) {
		body.WriteString(text[last:m[0]])
		last = m[1]
	}
	body.WriteString(text[last:])
	rest := body.String()
	out := pyImport.ReplaceAllStringFunc(text, func(line string) string {
		m := pyImport.FindStringSubmatch(line)
		if m[1] == "__future__" {
			return line
		}
		var keep []string
		for _, name := range strings.FieldsFunc(m[2]+m[3], func(r rune) bool { return r == ',' || unicode.IsSpace(r) }) {
			if regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`).MatchString(rest) {
				keep = append(keep, name)
			}
		}
		if len(keep) == 0 {
			return ""
		}
		if line := "from " + m[1] + " import " + strings.Join(keep, ", "); len(line) <= 100 {
			return line + "\n"
		}
		return pyCall("from "+m[1]+" import ", keep, "", "") + "\n"
	})
	return tidy([]byte(out), 2)
}
