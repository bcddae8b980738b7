import {
  ConnectError,
  ConnectionLostError,
  decodeResponse,
  encodeRequest,
  TransportClosedError,
  TransportError,
  TransportTimeoutError,
  type JsonRpcResponse,
  type Transport,
} from "./transport.js";

/** The reason close aborts the calls in flight with. */
const closedReason = new TransportClosedError("sessiond: transport closed");

/** The error codes of a connect that failed, for which the request never reached the server. */
const connectCodes = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);

/** Options of an {@link HttpTransport}. */
export interface HttpTransportOptions {
  /**
   * Sent as "Authorization: Bearer <token>": the server takes the caller's token from it
   * whenever a call leaves the token member (authToken, sessionKey) out, so one API key can
   * serve every call.
   */
  bearerToken?: string;
  /** Aborts each request after this many milliseconds. */
  timeoutMs?: number;
  /** The fetch function to use; the global one by default. */
  fetch?: typeof globalThis.fetch;
}

/**
 * JSON-RPC over HTTP with the global fetch: each call is a POST to url (by default
 * http://127.0.0.1:7401/). Replies with a JSON-RPC error resolve as such whatever their HTTP
 * status (sessiond answers 413 or 503, for example, with one).
 */
export class HttpTransport implements Transport {
  private nextId = 0;
  /** One for each call in flight: close aborts them. */
  private readonly inFlight = new Set<AbortController>();
  private isClosed = false;

  constructor(
    readonly url: string,
    private readonly options: HttpTransportOptions = {},
  ) {}

  async call(method: string, params?: unknown): Promise<JsonRpcResponse> {
    if (this.isClosed) {
      throw new TransportClosedError("sessiond: transport closed");
    }
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
    if (this.options.bearerToken) {
      headers.authorization = `Bearer ${this.options.bearerToken}`;
    }
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    // Aborted by close or at the timeout (AbortSignal.any, which would combine two, needs
    // Node.js 20.3).
    const abort = new AbortController();
    const timeoutMs = this.options.timeoutMs;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => abort.abort(new TransportTimeoutError(`sessiond: no reply to ${method} from ${this.url} within ${timeoutMs} ms`)), timeoutMs);
    this.inFlight.add(abort);
    let response: Response;
    let text: string;
    try {
      response = await fetchFn(this.url, {
        method: "POST",
        headers,
        body: encodeRequest(++this.nextId, method, params),
        signal: abort.signal,
      });
      text = await response.text();
    } catch (error) {
      if (abort.signal.reason === closedReason) {
        throw new TransportClosedError(`sessiond: transport closed: no reply to ${method}`, { cause: error });
      }
      if (abort.signal.reason instanceof TransportTimeoutError) {
        throw abort.signal.reason;
      }
      // fetch says only "fetch failed" or "terminated"; the cause says why.
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      const why = cause instanceof Error ? cause.message : String(cause);
      const code = (cause as { code?: unknown } | undefined)?.code;
      if (typeof code === "string" && connectCodes.has(code)) {
        throw new ConnectError(`sessiond: cannot connect to ${this.url} for ${method}: ${why}`, { cause: error });
      }
      throw new ConnectionLostError(`sessiond: no reply to ${method} from ${this.url}: ${why}`, { cause: error });
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(abort);
    }
    const reply = decodeResponse(text);
    if (reply === undefined) {
      throw new TransportError(`sessiond: HTTP ${response.status} from ${this.url} to ${method}: the reply is not a JSON-RPC response`);
    }
    return reply;
  }

  /** Aborts the calls in flight, which reject, and refuses later calls (fetch manages the connections). */
  async close(): Promise<void> {
    this.isClosed = true;
    for (const call of this.inFlight) {
      call.abort(closedReason);
    }
    this.inFlight.clear();
  }
}
