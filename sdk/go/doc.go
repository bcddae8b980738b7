// Package sessiond is the Go client of sessiond, a JSON-RPC 2.0 server of sessions and API
// keys.
//
// Connect over TCP with [Dial], over HTTP with [NewHTTPClient], or run a server of your own on
// its standard input and output with [StartStdio]. Every method of the server is a method of
// [Client] with typed params and result, and a [Client] is safe for concurrent use (calls
// from several goroutines share one TCP connection, pipelined):
//
//	client, err := sessiond.Dial(ctx, "127.0.0.1:7400")
//	if err != nil {
//		return err
//	}
//	defer client.Close()
//	session, err := client.CreateSession(ctx, sessiond.CreateSessionParams{Username: "admin", Password: password})
//	if errors.Is(err, sessiond.ErrInvalidCredentials) {
//		// wrong username or password, or a locked account
//	}
//
// CreateSession and AlterSession return a [SessionWithToken], which embeds the [Session]
// that describeSessions and listSessions return, its AuthToken always set: session.AuthToken
// is the new token, and session.Session a whole session object.
//
// Errors the server answers with are [*Error] values whose Is method compares codes, so
// errors.Is(err, sessiond.ErrInvalidAuthToken) holds for any reply with code 12031. Optional
// params whose zero value means something (booleans, numbers, settings) are pointers; [Ptr]
// makes one: sessiond.Ptr(true). A token is a plain string, left out when empty, so that over
// HTTP a transport's BearerToken can stand in for it. PingSession's is the exception: its
// token is optional, and leaving it out would ping without one, so PingSession always sends
// it and an empty token fails with ErrInvalidAuthToken; [Client.Ping] pings without a token.
//
// The methods, their params and results and the Err variables (types.go, errors.go and one
// file per method family: session.go, account.go, netx.go, discovery.go) are generated from
// the server's OpenRPC document, schemas/openrpc.json, by cmd/gensdk: do not edit them. The
// transports (client.go, stream.go, tcp.go, http.go, stdio.go) are written by hand and know
// nothing of the methods.
package sessiond

//go:generate go run ../../cmd/gensdk
