// Transports: how the client's JSON-RPC requests reach a sessiond server. Written by hand,
// unlike client.ts, types.ts and errors.ts: this file and tcp.ts and http.ts know JSON-RPC
// 2.0 framing but nothing of sessiond's methods.

import type { JsonRpcError } from "./errors.js";

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
   * Rejects only when no reply comes: the connection was lost or closed.
   */
  call(method: string, params?: unknown): Promise<JsonRpcResponse>;
  /** Releases the transport; calls still waiting for a reply reject. */
  close(): Promise<void>;
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
