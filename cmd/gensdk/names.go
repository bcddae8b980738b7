package main

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	identPattern      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)
	lowerIdentPattern = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
)

// isIdent reports whether a wire name can become an identifier in every SDK language.
func isIdent(s string) bool { return identPattern.MatchString(s) }

func isLowerIdent(s string) bool { return lowerIdentPattern.MatchString(s) }

// methodIdent is a method's name in the SDKs: the wire name without the "rpc." prefix that
// JSON-RPC reserves for system methods, dotted parts joined in lowerCamel case:
// "rpc.discover" → "discover".
func methodIdent(name string) string {
	name = strings.TrimPrefix(name, "rpc.")
	parts := strings.Split(name, ".")
	for i := 1; i < len(parts); i++ {
		parts[i] = exportName(parts[i])
	}
	return strings.Join(parts, "")
}

// exportName upper-cases the first letter: "createSession" → "CreateSession".
func exportName(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// words splits a camelCase name: "lockoutAfterNFailedAttempts" → lockout After N Failed
// Attempts; "hostIPAddresses" → host IP Addresses.
func words(s string) []string {
	var out []string
	runes := []rune(s)
	start := 0
	for i := 1; i < len(runes); i++ {
		prev, cur := runes[i-1], runes[i]
		next := rune(0)
		if i+1 < len(runes) {
			next = runes[i+1]
		}
		boundary := unicode.IsUpper(cur) && (unicode.IsLower(prev) || unicode.IsDigit(prev) ||
			(unicode.IsUpper(prev) && unicode.IsLower(next)))
		if boundary {
			out = append(out, string(runes[start:i]))
			start = i
		}
	}
	return append(out, string(runes[start:]))
}

// goInitialisms are the words Go spells in capitals (as golint and gopls do).
var goInitialisms = map[string]string{
	"api": "API", "http": "HTTP", "id": "ID", "ids": "IDs", "ip": "IP", "json": "JSON",
	"openrpc": "OpenRPC", "rpc": "RPC", "tcp": "TCP", "url": "URL", "uuid": "UUID",
}

// goName is a wire name as an exported Go identifier: "sessionIds" → "SessionIDs",
// "hostIpAddresses" → "HostIPAddresses", "defaultApi" → "DefaultAPI".
func goName(s string) string {
	var b strings.Builder
	for _, w := range words(s) {
		if up, ok := goInitialisms[strings.ToLower(w)]; ok {
			b.WriteString(up)
		} else {
			b.WriteString(exportName(w))
		}
	}
	return b.String()
}

// snakeName is a wire name in Python's snake_case: "lockoutAfterNFailedAttempts" →
// "lockout_after_n_failed_attempts". Python keywords get a trailing underscore.
func snakeName(s string) string {
	ws := words(s)
	for i, w := range ws {
		ws[i] = strings.ToLower(w)
	}
	name := strings.Join(ws, "_")
	if pythonKeywords[name] {
		name += "_"
	}
	return name
}

var pythonKeywords = map[string]bool{
	"False": true, "None": true, "True": true, "and": true, "as": true, "assert": true,
	"async": true, "await": true, "break": true, "class": true, "continue": true, "def": true,
	"del": true, "elif": true, "else": true, "except": true, "finally": true, "for": true,
	"from": true, "global": true, "if": true, "import": true, "in": true, "is": true,
	"lambda": true, "nonlocal": true, "not": true, "or": true, "pass": true, "raise": true,
	"return": true, "try": true, "while": true, "with": true, "yield": true,
	// Soft keywords and names the generated code itself uses.
	"match": true, "case": true, "type": true, "self": true, "params": true, "extra": true,
}

// constName is a wire name in UPPER_SNAKE_CASE: "invalidAuthToken" → "INVALID_AUTH_TOKEN".
func constName(s string) string {
	return strings.ToUpper(strings.TrimSuffix(snakeName(s), "_"))
}

// renameLead replaces a description's first word when it is the member's wire name, as the
// schema descriptions begin ("username is …"), by the name the language uses.
func renameLead(description, wire, local string) string {
	if rest, ok := strings.CutPrefix(description, wire); ok && wire != local {
		if rest == "" || strings.IndexByte(" :,.", rest[0]) >= 0 {
			return local + rest
		}
	}
	return description
}

// lowerFirst lower-cases a sentence's first letter unless the first word is an acronym.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if next, _ := utf8.DecodeRuneInString(s[n:]); unicode.IsUpper(next) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

// wrap breaks text into lines of at most width characters, keeping paragraphs (blank lines)
// and lines that must not be joined: Markdown table rows and list items.
func wrap(text string, width int) []string {
	var out []string
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			out = append(out, "")
		}
		var line string
		flush := func() {
			if line != "" {
				out = append(out, line)
				line = ""
			}
		}
		for _, src := range strings.Split(para, "\n") {
			src = strings.TrimRight(src, " ")
			if strings.HasPrefix(src, "|") || strings.HasPrefix(src, "- ") {
				flush()
				out = append(out, src)
				continue
			}
			for _, word := range strings.Fields(src) {
				if line != "" && len(line)+1+len(word) > width {
					flush()
				}
				if line == "" {
					line = word
				} else {
					line += " " + word
				}
			}
		}
		flush()
	}
	return out
}

// comment renders text as a comment block: every line prefixed (e.g. "\t// "), blank lines as
// the bare prefix, wrapped to fit width columns. It ends with a newline, or is empty.
func comment(text, prefix string, width int) string {
	if strings.TrimSpace(text) == "" {
		return ""
	}
	var b strings.Builder
	bare := strings.TrimRight(prefix, " ")
	// A tab counts as four columns, as gofmt's readers usually show it.
	columns := len(prefix) + 3*strings.Count(prefix, "\t")
	for _, line := range wrap(text, max(width-columns, 40)) {
		if line == "" {
			b.WriteString(bare)
		} else {
			b.WriteString(prefix + line)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// sentence ends text with a full stop unless it ends with punctuation already.
func sentence(text string) string {
	text = strings.TrimSpace(text)
	if text == "" || strings.ContainsAny(text[len(text)-1:], ".!?:") {
		return text
	}
	return text + "."
}
