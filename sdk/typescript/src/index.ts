// The sessiond client. client.ts, types.ts and errors.ts are generated from the server's
// OpenRPC document by cmd/gensdk (go run ./cmd/gensdk); this file and the transports are
// written by hand.

import { SessiondClient } from "./client.js";
import { StdioTransport, type StdioTransportOptions } from "./stdio.js";
import { TcpTransport, type TcpTransportOptions } from "./tcp.js";

export * from "./types.js";
export { SessiondError, type JsonRpcError } from "./errors.js";
export { SessiondClient } from "./client.js";
export {
  ConnectError,
  ConnectionLostError,
  ServerExitedError,
  TransportClosedError,
  TransportError,
  TransportTimeoutError,
  type JsonRpcResponse,
  type Transport,
} from "./transport.js";
export { TcpTransport, type TcpTransportOptions } from "./tcp.js";
export { HttpTransport, type HttpTransportOptions } from "./http.js";
export { StdioTransport, type StdioTransportOptions } from "./stdio.js";

/** Connects to the TCP listener of a sessiond server at address, "host:port". */
export async function connect(address: string, options: TcpTransportOptions = {}): Promise<SessiondClient> {
  return new SessiondClient(await TcpTransport.connect(address, options));
}

/**
 * Starts command with args, a sessiond server on its standard input and output (`sessiond
 * serve --stdio …`), and returns a client speaking to it there: see {@link StdioTransport}.
 */
export async function startStdio(command: string, args: readonly string[], options: StdioTransportOptions = {}): Promise<SessiondClient> {
  return new SessiondClient(await StdioTransport.start(command, args, options));
}
