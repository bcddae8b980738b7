// Transports: how the client's JSON-RPC requests reach a sessiond server. Written by hand,
// unlike client.ts, types.ts and errors.ts: this file and tcp.ts and http.ts know JSON-RPC
// 2.0 framing but nothing of sessiond's methods.

import type { JsonRpcError, SessiondError } from "./errors.js";

/** A JSON-RPC 2.0 reply: a result or an error. */
export interface JsonRpcResponse {
  jsonrpc: "2.0";
  id: number | string | null;
  result?: unknown;
  error?: JsonRpcError;
}

/**
 * Carries JSON-RPC calls to a sessiond server: {@link TcpTransport}, {@link HttpTransport},
 * or one of your own (wrapping another to log every call, say).
 */
export interface Transport {
  /**
   * Sends one request and resolves with its reply, whether that holds a result or an error.
   * Rejects only when no reply comes: with a {@link TransportError} when the connection failed
   * or was lost or closed, or the timeout passed; with a {@link SessiondError} when the server
   * refused the connection (code -32000, reason tooManyConnections or shuttingDown: it ran none
   * of the calls) or closed it after an error with id null that no call could claim.
   */
  call(method: string, params?: unknown): Promise<JsonRpcResponse>;
  /** Releases the transport; calls still waiting for a reply reject (a StdioTransport first lets its server answer those it has sent). */
  close(): Promise<void>;
}

/**
 * No reply came: the call never reached the server, or its answer never came back. Never a
 * {@link SessiondError}, which is the server's answer. The subclasses say which failure it was;
 * the message says what failed (the method, the address or URL) and why.
 */
export class TransportError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The transport was closed (its close method) before the reply came, or before the call. */
export class TransportClosedError extends TransportError {}

/** No connection, or no reply, within the transport's timeoutMs. The call may still run. */
export class TransportTimeoutError extends TransportError {}

/** The server could not be reached: connecting failed (ECONNREFUSED, no such host, …), or a stdio server could not be started. */
export class ConnectError extends TransportError {}

/**
 * The connection ended, or an HTTP request failed, without the reply: the server closed it or
 * the network failed. The call may have run; it is not sent again.
 */
export class ConnectionLostError extends TransportError {}

/**
 * A server that a StdioTransport started exited before its close: `exitCode` (or `signal`)
 * and `stderrTail`, the end of what it wrote on stderr, say why.
 */
export class ServerExitedError extends ConnectionLostError {
  constructor(
    /** The server's exit status, or null when a signal ended it or it has not exited yet. */
    readonly exitCode: number | null,
    /** The signal that ended the server, if one did. */
    readonly signal: NodeJS.Signals | null,
    /** The end of the server's stderr, at most 4 KiB of its last lines. */
    readonly stderrTail: string,
    options?: ErrorOptions,
  ) {
    const status = exitCode !== null ? `exited (exit status ${exitCode})` : signal !== null ? `exited (signal ${signal})` : "closed its output";
    super(`sessiond: the server ${status}${stderrTail === "" ? "" : `; its stderr ends: ${stderrTail}`}`, options);
  }
}

/** Encodes a request as one line: JSON.stringify escapes the newlines inside strings. */
export function encodeRequest(id: number, method: string, params: unknown): string {
  const request: Record<string, unknown> = { jsonrpc: "2.0", id, method };
  if (params !== undefined) {
    request.params = params;
  }
  return JSON.stringify(request);
}

/** Returns the JSON-RPC response in text, or undefined if text is not one. */
export function decodeResponse(text: string): JsonRpcResponse | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return undefined;
  }
  if (!("result" in value) && !("error" in value)) {
    return undefined;
  }
  return value as JsonRpcResponse;
}
