// The pipelined JSON-RPC connection over a byte stream, one JSON value per line each way, as
// sessiond serves TCP and stdio. Written by hand; tcp.ts and stdio.ts make the streams.

import type { Readable, Writable } from "node:stream";

import { SessiondError } from "./errors.js";
import { decodeResponse, encodeRequest, TransportTimeoutError, type JsonRpcResponse } from "./transport.js";

/** The code of the error with id null by which the server refuses a connection. */
const serverUnavailable = -32000;

interface Waiting {
  resolve(reply: JsonRpcResponse): void;
  reject(error: Error): void;
}

/** Options of a {@link StreamConnection}. */
export interface StreamConnectionOptions {
  /** Fails each call after this many milliseconds without its reply; no limit when left out. */
  timeoutMs?: number;
  /** Names the server in errors: "127.0.0.1:7400", "the stdio server". */
  peer: string;
  /**
   * Says why the stream ended when the server ended it (the input closed or failed, or a
   * write failed), with cause the stream's error if any; the calls waiting reject with what
   * it resolves to. stdio waits there for the server's exit to tell its status and stderr.
   */
  lost(cause?: Error): Error | Promise<Error>;
}

/**
 * One connection: calls are pipelined, each request written at once, and the replies, in
 * whatever order the server sends them, are matched to their calls by id. input and output
 * may be the same stream (a socket).
 */
export class StreamConnection {
  private nextId = 0;
  private closedByUs = false;
  private ending = false;
  private ended: Promise<void> | undefined;
  private readonly waiting = new Map<number, Waiting>();
  private buffered = "";
  private failure: Error | undefined;
  /**
   * An error with id null that came while no call was waiting and no numbered reply since,
   * which calls fail with if the server closes the connection next. (A refusal of the
   * connection, -32000, stops it at once: see dispatch.)
   */
  private unclaimed: JsonRpcResponse | undefined;
  /** Resolves when the input has closed and the calls have been failed. */
  readonly closed: Promise<void>;

  constructor(
    input: Readable,
    private readonly output: Writable,
    private readonly options: StreamConnectionOptions,
  ) {
    input.setEncoding("utf8");
    input.on("data", (chunk: string) => this.receive(chunk));
    // An error the server sent before it closed (unclaimed) is why the connection ended,
    // whether it closed cleanly or reset.
    input.on("error", (error) => void this.end(error));
    if ((output as unknown) !== input) {
      // A write to a server that has gone (EPIPE): the input's end says why.
      output.on("error", (error) => void this.end(error));
    }
    this.closed = new Promise((resolve) => {
      input.once("close", () => void this.end().then(resolve));
    });
  }

  call(method: string, params?: unknown): Promise<JsonRpcResponse> {
    if (this.failure !== undefined) {
      return Promise.reject(this.failure);
    }
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = startTimer(this.options.timeoutMs, () => {
        // The call stays waiting, answered by nobody, until its reply comes: meanwhile an
        // error with id null may be its own, so it is not given to another call.
        this.waiting.set(id, { resolve() {}, reject() {} });
        reject(new TransportTimeoutError(`sessiond: no reply to ${method} from ${this.options.peer} within ${this.options.timeoutMs} ms`));
      });
      this.waiting.set(id, {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      if (!this.ending) {
        this.output.write(encodeRequest(id, method, params) + "\n");
      }
    });
  }

  /** Reports whether the connection ended other than by close: lost, or refused by the server. */
  lost(): boolean {
    return this.failure !== undefined && !this.closedByUs;
  }

  /** Fails the calls still waiting with error, as close does, and refuses later calls. */
  stopWith(error: Error): void {
    this.closedByUs = true;
    this.stop(error);
  }

  /**
   * Refuses later calls with error, unsent, but leaves the calls waiting to the replies that
   * come until the input ends; those still waiting then reject with error. For a server that
   * answers the requests it has read when its input ends (sessiond on stdio): end the output
   * next.
   */
  drainWith(error: Error): void {
    this.closedByUs = true;
    this.failure = error;
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    for (let newline = this.buffered.indexOf("\n"); newline >= 0; newline = this.buffered.indexOf("\n")) {
      const line = this.buffered.slice(0, newline);
      this.buffered = this.buffered.slice(newline + 1);
      if (line.trim() !== "") {
        this.dispatch(line);
      }
    }
  }

  /**
   * Hands a reply to the call with its id. The server answers with id null a request it could
   * not read at all; when a single call is unanswered, that reply is its own.
   */
  private dispatch(line: string): void {
    const reply = decodeResponse(line);
    if (reply === undefined) {
      return;
    }
    if (reply.id === null && reply.error?.code === serverUnavailable) {
      // The server refuses the connection (tooManyConnections, shuttingDown) and closes it
      // next, having run none of its requests: every call waiting fails with the refusal, and
      // so do calls made from now on rather than be written to a closing connection.
      this.stop(SessiondError.fromWire(reply.error));
      return;
    }
    let id = reply.id;
    if (id === null && reply.error != null && this.waiting.size === 0) {
      this.unclaimed = reply; // what a close that follows means
      return;
    }
    if (id === null && reply.error != null && this.waiting.size === 1) {
      [id] = this.waiting.keys();
    }
    if (typeof id !== "number") {
      return;
    }
    const waiting = this.waiting.get(id);
    if (waiting !== undefined) {
      this.waiting.delete(id);
      this.unclaimed = undefined; // the connection works: an earlier stray error explains nothing
      waiting.resolve(reply);
    }
  }

  /**
   * Stops the connection, once, with why the server ended it, or why we did (close); resolves
   * when it has.
   */
  private end(cause?: Error): Promise<void> {
    this.ended ??= (async () => {
      this.ending = true; // no more writes: the calls made meanwhile wait for the error
      const unclaimed = this.unclaimed?.error;
      this.stop(this.failure ?? (unclaimed != null ? SessiondError.fromWire(unclaimed) : await this.options.lost(cause)));
    })();
    return this.ended;
  }

  private stop(error: Error): void {
    this.ending = true;
    this.failure ??= error;
    for (const waiting of this.waiting.values()) {
      waiting.reject(this.failure);
    }
    this.waiting.clear();
  }
}

/** Calls fire after ms milliseconds; no timer when ms is left out. */
export function startTimer(ms: number | undefined, fire: () => void): ReturnType<typeof setTimeout> | undefined {
  return ms === undefined ? undefined : setTimeout(fire, ms);
}
