package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sessiond/sessiond/rpc"
)

// How sessiond call keeps secrets off its command line, where every user of the machine can
// read them: the login password comes from --password-file, --password-stdin or
// SESSIOND_PASSWORD (as docker login --password-stdin, psql's PGPASSWORD or redis-cli's
// REDISCLI_AUTH do), and any params from stdin when PARAMS_JSON is "-".

// maxPasswordInput bounds what --password-file and --password-stdin read: a password is at
// most 256 bytes, so more means the wrong file.
const maxPasswordInput = 4096

// callPasswordInput is the login password sessiond call was given and where it came from.
type callPasswordInput struct {
	value string
	// from names the source for messages: "--password-file", "--password-stdin" or
	// "SESSIOND_PASSWORD".
	from string
	// explicit is true for a flag: a password that cannot be used is then an error, while
	// SESSIOND_PASSWORD, set for a whole shell, is left unused.
	explicit bool
}

// callPassword returns the login password from --password-file (when fileGiven),
// --password-stdin or SESSIOND_PASSWORD, in that order, or nil when there is none. Its
// errors name the source, never the password.
func callPassword(file string, fileGiven, fromStdin bool, stdin io.Reader) (*callPasswordInput, error) {
	switch {
	case fileGiven:
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--password-file: %v", err)
		}
		defer f.Close()
		value, err := readPassword(f)
		if err != nil {
			return nil, fmt.Errorf("--password-file %s %v", file, err)
		}
		return &callPasswordInput{value: value, from: "--password-file", explicit: true}, nil
	case fromStdin:
		value, err := readPassword(stdin)
		if err != nil {
			return nil, fmt.Errorf("--password-stdin: stdin %v", err)
		}
		return &callPasswordInput{value: value, from: "--password-stdin", explicit: true}, nil
	}
	// SESSIOND_PASSWORD is checked only where it fills the params (usablePassword): set for a
	// whole shell, it must not make calls that leave it unused fail.
	if value, ok := os.LookupEnv("SESSIOND_PASSWORD"); ok && value != "" {
		return &callPasswordInput{value: value, from: "SESSIOND_PASSWORD"}, nil
	}
	return nil, nil
}

// usablePassword says why password cannot be sent, or nil. The flags' passwords were checked
// as they were read; SESSIOND_PASSWORD is checked here, once it is known to fill the params.
func usablePassword(password *callPasswordInput) error {
	if !utf8.ValidString(password.value) {
		return fmt.Errorf("%s is not valid UTF-8, which a JSON string cannot carry", password.from)
	}
	return nil
}

// readPassword reads a password: all of r but one final line ending ("\n" or "\r\n"), as
// docker login --password-stdin does. A second line is refused rather than sent to the
// server: it means the wrong file, which may hold another secret. So is an empty password
// (an empty file, stdin from /dev/null), which would count as a failed login.
func readPassword(r io.Reader) (string, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxPasswordInput+1))
	if err != nil {
		return "", fmt.Errorf("cannot be read: %v", err)
	}
	if len(raw) > maxPasswordInput {
		return "", fmt.Errorf("holds more than %d bytes; it must hold only the password", maxPasswordInput)
	}
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	if bytes.ContainsAny(raw, "\r\n") {
		return "", errors.New("holds more than one line; it must hold only the password")
	}
	if len(raw) == 0 {
		return "", errors.New(`holds no password, and an empty one would count as a failed login; if the account's password is empty, give "password":"" in PARAMS_JSON`)
	}
	if !utf8.Valid(raw) {
		return "", errors.New("is not valid UTF-8, which a JSON string cannot carry")
	}
	return string(raw), nil
}

// readParamsFromStdin reads PARAMS_JSON given as "-".
func readParamsFromStdin(stdin io.Reader) (string, error) {
	raw, err := io.ReadAll(io.LimitReader(stdin, maxReplyBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading PARAMS_JSON from stdin: %v", err)
	}
	if len(raw) > maxReplyBytes {
		return "", fmt.Errorf("PARAMS_JSON on stdin is larger than %d MiB", maxReplyBytes>>20)
	}
	return string(raw), nil
}

// loginMethod returns the method of the table named method if it is a login method (Auth
// credentials: createSession, authenticate), or nil.
func loginMethod(method string) *rpc.Method {
	if m := lookupMethod(method); m != nil && m.Auth == rpc.AuthCredentials {
		return m
	}
	return nil
}

// loginPasswordField is the params member of a login method's password.
const loginPasswordField = "password"

// withPassword returns params with the login password of method filled in: the member
// "password" added at the end of named params (params of its own when there are none), or
// appended to positional params that stop just before it. Only the login methods of the
// method table (Auth credentials: createSession, authenticate) take it; the error says why
// the password cannot be placed, without quoting it.
func withPassword(params json.RawMessage, method, password string) (json.RawMessage, error) {
	m := loginMethod(method)
	if m == nil {
		var logins []string
		for _, candidate := range rpc.Methods {
			if candidate.Auth == rpc.AuthCredentials {
				logins = append(logins, candidate.Name)
			}
		}
		return nil, fmt.Errorf("%s takes no login password (only %s do); to keep other secrets off the command line, give PARAMS_JSON as - and write it on stdin", method, strings.Join(logins, " and "))
	}
	quoted := quoteJSON(password)
	if len(params) == 0 {
		return json.RawMessage(`{"` + loginPasswordField + `":` + quoted + `}`), nil
	}
	if params[0] == '[' {
		var positional []json.RawMessage
		if json.Unmarshal(params, &positional) != nil {
			return nil, errors.New("PARAMS_JSON is not a JSON array")
		}
		at := slices.Index(m.Positional, loginPasswordField)
		switch {
		case at < 0:
			return nil, fmt.Errorf("%s takes no positional password", method)
		case len(positional) > at:
			return nil, errors.New("PARAMS_JSON has a password already; give it in one place")
		case len(positional) < at:
			return nil, fmt.Errorf("positional PARAMS_JSON must hold %s, which come before the password", strings.Join(m.Positional[:at], ", "))
		}
		if at == 0 {
			return json.RawMessage("[" + quoted + "]"), nil
		}
		return json.RawMessage(string(params[:len(params)-1]) + "," + quoted + "]"), nil
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(params, &members) != nil {
		return nil, errors.New("PARAMS_JSON is not a JSON object")
	}
	if _, ok := members[loginPasswordField]; ok {
		return nil, errors.New("PARAMS_JSON has a password already; give it in one place")
	}
	// params is compacted: it ends in '}', and "{}" is the only object without members.
	sep := ","
	if len(members) == 0 {
		sep = ""
	}
	return json.RawMessage(string(params[:len(params)-1]) + sep + `"` + loginPasswordField + `":` + quoted + "}"), nil
}

// lookupMethod returns the entry of the method table named name, or nil.
func lookupMethod(name string) *rpc.Method {
	for i := range rpc.Methods {
		if rpc.Methods[i].Name == name {
			return &rpc.Methods[i]
		}
	}
	return nil
}

// quoteJSON returns s as a JSON string, with "<>&" as typed, like the rest of the request.
func quoteJSON(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}

// secretMembers are the params members whose string values sessiond call hides in what it
// prints: passwords and tokens. The method table marks no member as secret;
// TestCallSecretMembers checks that every params member named like a password, token or key
// is here.
var secretMembers = map[string]bool{
	"password": true, "currentPassword": true, "newPassword": true,
	"authToken": true, "authTokens": true, "sessionKey": true,
}

// paramsSecrets returns the string values of the secret members of params, at any depth and
// duplicates included, and of the positional params that the method table names so: the
// secrets of the request, wherever its params came from.
func paramsSecrets(method string, params json.RawMessage) secrets {
	if len(params) == 0 {
		return nil
	}
	var positional []string
	if m := lookupMethod(method); m != nil {
		positional = m.Positional
	}
	var found secrets
	walkSecrets(json.NewDecoder(bytes.NewReader(params)), false, positional, &found) // params is valid JSON by now
	return found
}

// walkSecrets reads one JSON value from dec and adds its strings to found if secret, and the
// strings of its secret members (or, in an array, of the elements that positional names as
// secret members) if not.
func walkSecrets(dec *json.Decoder, secret bool, positional []string, found *secrets) error {
	token, err := dec.Token()
	if err != nil {
		return err
	}
	switch token := token.(type) {
	case string:
		if secret {
			*found = append(*found, token)
		}
	case json.Delim:
		if token == '{' {
			for dec.More() {
				name, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := name.(string)
				if err := walkSecrets(dec, secret || secretMembers[key], nil, found); err != nil {
					return err
				}
			}
		} else {
			for i := 0; dec.More(); i++ {
				named := i < len(positional) && secretMembers[positional[i]]
				if err := walkSecrets(dec, secret || named, nil, found); err != nil {
					return err
				}
			}
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	return nil
}

// secrets are strings sessiond call sent and must not print: a proxy or another server may
// echo the request in an error.
type secrets []string

// hiddenMark stands in for a secret in what sessiond call prints.
const hiddenMark = "[hidden]"

// hide replaces each secret in text where it stands as a whole JSON string value, quotes
// included: as sent ("pw"), as encoding/json's default HTML-safe escaping writes it, and as
// either appears in a JSON string that quotes the request (\"pw\"). It also replaces the
// secret as an HTTP credential ("Bearer pw"), the way the token is sent. Occurrences inside a
// longer string stay: a short secret neither garbles a message nor shows where it occurs.
func (hidden secrets) hide(text string) string {
	for _, secret := range hidden {
		if secret == "" {
			continue
		}
		for _, quoted := range uniq(quoteJSON(secret), marshalJSON(secret)) {
			// The request quoted in a JSON string, as an error message may carry it.
			for _, inString := range uniq(quoteJSON(quoted), marshalJSON(quoted)) {
				text = replaceUnescaped(text, inString[1:len(inString)-1], `\"`+hiddenMark+`\"`)
			}
			text = replaceUnescaped(text, quoted, `"`+hiddenMark+`"`)
		}
		text = replaceBearer(text, secret)
	}
	return text
}

// marshalJSON returns s as encoding/json writes it by default, with "<>&" escaped as \u003c,
// \u003e and \u0026: a Go server echoing the params writes them so.
func marshalJSON(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

// uniq returns a, and b when it differs from a.
func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// replaceUnescaped replaces each occurrence of form in text that a backslash does not escape:
// a quote after an odd number of backslashes is a character inside a string, not the start
// of one.
func replaceUnescaped(text, form, mark string) string {
	return replaceMatches(text, form, 0, mark, func(at, _ int) bool {
		backslashes := 0
		for backslashes < at && text[at-1-backslashes] == '\\' {
			backslashes++
		}
		return backslashes%2 == 0
	})
}

// replaceBearer replaces secret where it follows "Bearer " and ends the credential: the
// character after it, if any, is none a token can hold.
func replaceBearer(text, secret string) string {
	const scheme = "Bearer "
	return replaceMatches(text, scheme+secret, len(scheme), hiddenMark, func(_, end int) bool {
		return end == len(text) || !isTokenChar(text[end])
	})
}

// replaceMatches replaces each occurrence text[at:end] of form for which ok(at, end) holds,
// but its first keep bytes, with mark.
func replaceMatches(text, form string, keep int, mark string, ok func(at, end int) bool) string {
	var out strings.Builder
	done := 0 // text[:done] is in out, replaced
	for from := 0; ; {
		i := strings.Index(text[from:], form)
		if i < 0 {
			break
		}
		at := from + i
		end := at + len(form)
		if !ok(at, end) {
			from = at + 1
			continue
		}
		out.WriteString(text[done : at+keep])
		out.WriteString(mark)
		done = end
		from = done
	}
	if done == 0 {
		return text
	}
	out.WriteString(text[done:])
	return out.String()
}

// isTokenChar reports whether c may be part of a bearer token (RFC 6750's b64token).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/=", c) >= 0
}
