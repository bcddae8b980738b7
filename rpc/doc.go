// Package rpc puts sessiond on the wire: a complete JSON-RPC 2.0 protocol layer and the three
// transports that feed it (TCP, stdio and HTTP), all served by one Server.
//
// The protocol layer (protocol.go) owns everything the JSON-RPC 2.0 specification asks of a
// server: batches, notifications, "id": null requests, byte-exact id echo, and the standard
// -32700/-32600 replies for malformed input. It never decodes params: a valid request reaches
// the Dispatcher as a Call whose Params is the raw JSON of the request's params member. The
// method table, and with it -32601 and -32602, belongs to the Dispatcher.
//
// Each transport is a thin file that turns its connection into frames for the same Server:
//
//   - tcp.go: one JSON value per line; pipelining; replies in any order, one per line.
//   - stdio.go: the same framing on a reader and a writer, or Content-Length headers (LSP style).
//   - http.go: POST / with a JSON body, single or batch; Authorization: Bearer becomes
//     Call.BearerToken.
//
// Limits (Options) answer with JSON-RPC errors instead of dropping the client: an over-long
// request is skipped without being buffered whole, an over-long batch is refused as a whole,
// extra connections get one error and are closed, and a connection that pipelines more than
// its share stops being read until its replies drain. Slow or stalled clients are dropped by
// deadlines without holding up anyone else.
//
// The package builds on github.com/sourcegraph/jsonrpc2 for its Error type and code constants;
// its Conn works as a client of this server.
package rpc
