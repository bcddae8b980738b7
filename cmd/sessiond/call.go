package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

const callUsage = `Usage: sessiond call [flags] METHOD [PARAMS_JSON | -]

Sends one JSON-RPC 2.0 request to a running sessiond and prints the result as indented JSON.
PARAMS_JSON is a JSON object (named params) or a JSON array (positional params, as the NetX
methods take them); leave it out for a method without params, or give - to read it from
stdin. The request goes over TCP (one JSON value per line) to --addr, or as an HTTP POST to
--http when that is given.

Secrets on the command line can be read by every user of the machine (ps, /proc/PID/cmdline),
so sessiond call can take them from elsewhere:
  - the login password of createSession and authenticate: --password-file FILE (one line),
    --password-stdin, or SESSIOND_PASSWORD. It fills params.password (the second positional
    param of authenticate) when PARAMS_JSON has no password. The flags are refused for other
    methods and when PARAMS_JSON has a password too; SESSIOND_PASSWORD is then not used.
  - a token: SESSIOND_TOKEN (--token TOKEN puts it on the command line). It fills
    params.authToken (params.sessionKey for NetX methods) when PARAMS_JSON has neither; over
    HTTP it is also sent as "Authorization: Bearer TOKEN". Positional params are sent as they
    are.
  - any other secret, such as the password of createAccount or alterAccount: give PARAMS_JSON
    as - and write it on stdin (a pipe or a here-document, not echo with the secret in argv).
Messages on stderr never quote PARAMS_JSON. Where they show part of a reply (an error's
message and data, a body that is not a JSON-RPC reply, as when a proxy echoes the request),
the passwords and tokens of the request are hidden where they stand as whole JSON strings or
after "Bearer ". The result on stdout is printed as the server sent it: describeSessions
shows the token presented, createSession the new one.

Exit status:
  0  the result was printed on stdout
  1  the server answered with an error, printed on stderr as "error CODE: MESSAGE"
     followed by its data; or a NetX failure answered as a result (authenticate's "-1",
     setUserPreference's false), printed on stdout with a note on stderr
  2  bad flags or PARAMS_JSON, or no answer (cannot connect, timeout, malformed reply)

Examples:
  sessiond call --password-file ~/.sessiond-password createSession '{"username":"admin"}'
  SESSIOND_PASSWORD=$PW sessiond call authenticate '["admin"]'
  SESSIOND_TOKEN=$TOKEN sessiond call describeSessions
  SESSIOND_TOKEN=$TOKEN sessiond call listSessions '{"usernameFilter":["admin"]}'
  SESSIOND_TOKEN=$TOKEN sessiond call createAccount - < alice.json
  sessiond call --http http://127.0.0.1:7401 pingSession
  sessiond call --addr 10.0.0.5:7400 --timeout 30s rpc.discover > openrpc.json

Flags:
`

// Exit statuses of sessiond call.
const (
	callOK          = 0
	callRPCError    = 1
	callUsageOrConn = 2
)

// maxReplyBytes bounds the reply sessiond call reads; rpc.discover is the largest, well under.
const maxReplyBytes = 64 << 20

// callRequestID is the id of the one request sessiond call sends.
const callRequestID = 1

// runCall is `sessiond call`: it sends one JSON-RPC request and prints the reply. It returns
// the exit status: 0 for a result, 1 for a JSON-RPC error, 2 for bad usage or no reply. stdin
// is read only for --password-stdin or a PARAMS_JSON of "-".
func runCall(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		addr          string
		httpURL       string
		token         string
		passwordFile  string
		passwordStdin bool
		timeout       time.Duration
	)
	fs := pflag.NewFlagSet("call", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVar(&addr, "addr", DefaultTCPAddr, "TCP address of the server")
	fs.StringVar(&httpURL, "http", "", "send over HTTP to this URL instead, e.g. http://127.0.0.1:7401")
	fs.StringVar(&token, "token", "", "authToken or session key to send (default $SESSIOND_TOKEN, which keeps it off the command line)")
	fs.StringVar(&passwordFile, "password-file", "", "read the login password of createSession or authenticate from FILE, one line (without it, or --password-stdin, the password is $SESSIOND_PASSWORD)")
	fs.BoolVar(&passwordStdin, "password-stdin", false, "read the login password of createSession or authenticate from stdin")
	fs.DurationVar(&timeout, "timeout", 10*time.Second, "give up when there is no reply after this long")
	fs.Usage = func() { fmt.Fprint(stdout, callUsage, fs.FlagUsages()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return callOK
		}
		return usageError(stderr, "call", err.Error())
	}
	if !fs.Changed("token") {
		token = os.Getenv("SESSIOND_TOKEN")
	}
	paramsFromStdin := fs.NArg() == 2 && fs.Arg(1) == "-"
	switch {
	case fs.NArg() == 0:
		return usageError(stderr, "call", "missing METHOD")
	case fs.NArg() > 2:
		return usageError(stderr, "call", fmt.Sprintf("too many arguments (%d); quote PARAMS_JSON as one argument", fs.NArg()))
	case fs.Changed("addr") && fs.Changed("http"):
		return usageError(stderr, "call", "give --addr or --http, not both")
	case timeout <= 0:
		return usageError(stderr, "call", "--timeout must be positive")
	case fs.Changed("password-file") && passwordStdin:
		return usageError(stderr, "call", "give --password-file or --password-stdin, not both")
	case passwordStdin && paramsFromStdin:
		return usageError(stderr, "call", "--password-stdin and PARAMS_JSON - both read stdin; put the password in the params or in --password-file")
	}
	method := fs.Arg(0)
	password, err := callPassword(passwordFile, fs.Changed("password-file"), passwordStdin, stdin)
	if err != nil {
		return usageError(stderr, "call", err.Error())
	}
	var params json.RawMessage
	if fs.NArg() == 2 {
		text := fs.Arg(1)
		if paramsFromStdin {
			if text, err = readParamsFromStdin(stdin); err != nil {
				return usageError(stderr, "call", err.Error())
			}
		}
		if params, err = parseCallParams(text); err != nil {
			fmt.Fprintf(stderr, "sessiond call: PARAMS_JSON %v\n", err)
			return callUsageOrConn
		}
	}
	if password != nil {
		filled, err := withPassword(params, method, password.value)
		switch {
		case err == nil:
			if err := usablePassword(password); err != nil {
				return usageError(stderr, "call", err.Error())
			}
			params = filled
		case password.explicit:
			return usageError(stderr, "call", fmt.Sprintf("%s: %v", password.from, err))
		}
	}
	if field := tokenField(method); token != "" && field != "" {
		params = withAuthToken(params, field, token)
	}
	// Kept out of what sessiond call prints on stderr of a reply: the token, which an
	// Authorization header may carry while the params hold another, and every password
	// and token of the params, filled in or given.
	hidden := append(secrets{token}, paramsSecrets(method, params)...)
	var encoded bytes.Buffer
	enc := json.NewEncoder(&encoded) // ends the request with the newline TCP framing needs
	enc.SetEscapeHTML(false)         // send "<&>" in passwords as typed
	if err := enc.Encode(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      int             `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params,omitempty"`
	}{"2.0", callRequestID, method, params}); err != nil { // params is valid JSON by now
		fmt.Fprintln(stderr, "sessiond call:", err)
		return callUsageOrConn
	}
	request := encoded.Bytes()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var reply []byte
	if fs.Changed("http") {
		reply, err = callHTTP(ctx, httpURL, token, bytes.TrimSuffix(request, []byte("\n")), hidden)
	} else {
		reply, err = callTCP(ctx, addr, request)
	}
	if err != nil {
		fmt.Fprintln(stderr, "sessiond call:", err)
		return callUsageOrConn
	}
	return printReply(method, reply, stdout, stderr, hidden)
}

// parseCallParams checks that text is one JSON object or array and returns it compacted. Its
// errors never quote text, which may hold a password.
func parseCallParams(text string) (json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("is empty; leave it out for no params")
		}
		return nil, fmt.Errorf("is not valid JSON: %v", syntaxErrorWithoutInput(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("has more after the first JSON value; give one object or array")
	}
	switch raw[0] {
	case '{', '[':
	default:
		return nil, fmt.Errorf("must be a JSON object {…} or array […], got %s", kindOfParams(raw))
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("is not valid JSON: %v", syntaxErrorWithoutInput(err))
	}
	return buf.Bytes(), nil
}

// syntaxErrorWithoutInput rewords a JSON syntax error so that it says where the fault is but
// not the character found there ("invalid character 'x' after object key" quotes the
// input), since that may be a character of a password.
func syntaxErrorWithoutInput(err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err
	}
	const prefix = "invalid character '"
	msg := se.Error()
	if !strings.HasPrefix(msg, prefix) {
		return fmt.Errorf("at byte %d: %s", se.Offset, msg)
	}
	// The quoted character is followed by "' " and what the parser was reading; a quote
	// character is written '\'', so the search starts after the first quoted byte.
	rest := msg[len(prefix)+1:]
	end := strings.Index(rest, "' ")
	if end < 0 {
		return fmt.Errorf("unexpected character at byte %d", se.Offset)
	}
	return fmt.Errorf("unexpected character at byte %d %s", se.Offset, rest[end+2:])
}

// kindOfParams names the kind of one JSON value, for a message that must not quote it.
func kindOfParams(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// tokenField is the params member that carries the caller's token for method, from the
// method table: "sessionKey" for NetX methods, "authToken" otherwise.
func tokenField(method string) string {
	if m := lookupMethod(method); m != nil {
		return m.TokenField // "" for a method that takes no token: an exported SESSIOND_TOKEN must not break a login
	}
	return "authToken"
}

// withAuthToken adds field: token to named params that carry no token (neither authToken nor
// sessionKey), keeping the members given in their order. Positional params are returned as
// they are; absent params become {field: token}.
func withAuthToken(params json.RawMessage, field, token string) json.RawMessage {
	quoted := quoteJSON(token) // as the rest of the request, "<>&" as typed
	prefix := `{"` + field + `":`
	if len(params) == 0 {
		return json.RawMessage(prefix + quoted + `}`)
	}
	if params[0] != '{' {
		return params
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(params, &members) != nil {
		return params
	}
	if _, ok := members["authToken"]; ok {
		return params
	}
	if _, ok := members["sessionKey"]; ok {
		return params
	}
	rest := bytes.TrimSpace(params[1:])
	if len(rest) == 0 {
		return params
	}
	out := []byte(prefix + quoted)
	if rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// callTCP sends request, one line ending in a newline, and reads one JSON value back.
func callTCP(ctx context.Context, addr string, request []byte) ([]byte, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("cannot connect to %s: no answer within the timeout", addr)
		}
		return nil, fmt.Errorf("cannot connect to %s: %v (is sessiond serve running there? choose the server with --addr or --http)", addr, unwrapOpError(err))
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if _, err := conn.Write(request); err != nil {
		return nil, tcpError(addr, "sending the request", err)
	}
	var reply json.RawMessage
	br := bufio.NewReader(io.LimitReader(conn, maxReplyBytes))
	if start, _ := br.Peek(5); string(start) == "HTTP/" {
		return nil, fmt.Errorf("%s answers HTTP, not JSON-RPC over TCP: use --http http://%s", addr, addr)
	}
	if err := json.NewDecoder(br).Decode(&reply); err != nil {
		return nil, tcpError(addr, "reading the reply", err)
	}
	return reply, nil
}

func tcpError(addr, doing string, err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no reply from %s within the timeout (--timeout)", addr)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%s closed the connection without replying", addr)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s closed the connection in the middle of its reply", addr)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed reply from %s: %v", addr, err)
	}
	return fmt.Errorf("%s %s: %v", doing, addr, unwrapOpError(err))
}

// unwrapOpError drops the "dial tcp 127.0.0.1:7400:" prefix that repeats the address.
func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// callHTTP POSTs request to rawURL and returns the body of the reply. An error quoting a body
// that is not a JSON-RPC reply shows none of hidden (a proxy may echo the request).
func callHTTP(ctx context.Context, rawURL, token string, request []byte, hidden secrets) ([]byte, error) {
	target, err := httpTarget(rawURL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(request))
	if err != nil {
		return nil, fmt.Errorf("--http %q: %v", rawURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			return nil, fmt.Errorf("no reply from %s within the timeout (--timeout)", target)
		}
		if errors.As(err, &ue) {
			err = unwrapOpError(ue.Err)
		}
		return nil, fmt.Errorf("cannot reach %s: %v (is sessiond serve running there?)", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("no reply from %s within the timeout (--timeout)", target)
		}
		return nil, fmt.Errorf("reading the reply from %s: %v", target, err)
	}
	// A JSON-RPC reply is taken whatever the status (a parse error may come with 400); any
	// other body is a fault of the HTTP layer.
	if json.Valid(body) && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		return body, nil
	}
	excerpt := excerptOf(body, hidden)
	if excerpt == "" {
		excerpt = "(empty body)"
	}
	return nil, fmt.Errorf("%s answered HTTP %s without a JSON-RPC reply: %s", target, resp.Status, excerpt)
}

// httpTarget accepts a full URL or a bare host:port, which means http://host:port/.
func httpTarget(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("--http %q is not an http:// or https:// URL such as http://127.0.0.1:7401", raw)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u.String(), nil
}

// printReply prints the result of a JSON-RPC response on stdout, or its error on stderr, and
// returns the exit status. What it prints on stderr shows none of hidden.
func printReply(method string, reply []byte, stdout, stderr io.Writer, hidden secrets) int {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(reply, &members); err != nil {
		fmt.Fprintf(stderr, "sessiond call: malformed reply (not a JSON-RPC response object): %s\n", excerptOf(reply, hidden))
		return callUsageOrConn
	}
	id := string(members["id"])
	if id == "" {
		id = "(none)"
	}
	if rawErr, ok := members["error"]; ok && string(rawErr) != "null" {
		var rpcErr struct {
			Code    *int64          `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		}
		if json.Unmarshal(rawErr, &rpcErr) != nil || rpcErr.Code == nil {
			fmt.Fprintf(stderr, "sessiond call: malformed error in reply: %s\n", excerptOf(rawErr, hidden))
			return callUsageOrConn
		}
		// A request the server could not read is answered with id null.
		if id != fmt.Sprint(callRequestID) && id != "null" {
			fmt.Fprintf(stderr, "sessiond call: reply is for id %s, not %d\n", id, callRequestID)
			return callUsageOrConn
		}
		fmt.Fprintf(stderr, "error %d: %s\n", *rpcErr.Code, hidden.hide(rpcErr.Message))
		if len(rpcErr.Data) > 0 && string(rpcErr.Data) != "null" {
			fmt.Fprintf(stderr, "%s\n", hidden.hide(string(indentJSON(rpcErr.Data))))
		}
		var data struct{ Field, Reason string }
		_ = json.Unmarshal(rpcErr.Data, &data)
		if data.Field == loginPasswordField && data.Reason == "required" && loginMethod(method) != nil {
			fmt.Fprintln(stderr, "sessiond call: give the password with SESSIOND_PASSWORD, --password-file FILE or --password-stdin")
		}
		return callRPCError
	}
	result, ok := members["result"]
	if !ok {
		fmt.Fprintf(stderr, "sessiond call: malformed reply (neither result nor error): %s\n", excerptOf(reply, hidden))
		return callUsageOrConn
	}
	if id != fmt.Sprint(callRequestID) {
		fmt.Fprintf(stderr, "sessiond call: reply is for id %s, not %d\n", id, callRequestID)
		return callUsageOrConn
	}
	fmt.Fprintf(stdout, "%s\n", indentJSON(result))
	// NetX methods answer some failures with a result, not an error; a script wants them
	// as one.
	switch {
	case method == "authenticate" && string(result) == `"-1"`:
		fmt.Fprintln(stderr, `sessiond call: authenticate answered "-1": the login failed (unknown user, wrong password or a locked account)`)
		return callRPCError
	case method == "setUserPreference" && string(result) == "false":
		fmt.Fprintln(stderr, "sessiond call: setUserPreference answered false: the session key is not valid")
		return callRPCError
	}
	return callOK
}

func indentJSON(raw json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return raw
	}
	return buf.Bytes()
}

// excerptOf is the start of b for a message, with none of hidden.
func excerptOf(b []byte, hidden secrets) string {
	s := hidden.hide(strings.TrimSpace(string(b)))
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
