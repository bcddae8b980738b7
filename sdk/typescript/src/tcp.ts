import { connect, type Socket } from "node:net";

import { SessiondError } from "./errors.js";
import { decodeResponse, encodeRequest, type JsonRpcResponse, type Transport } from "./transport.js";

interface Waiting {
  resolve(reply: JsonRpcResponse): void;
  reject(error: Error): void;
}

/** Options of a {@link TcpTransport}. */
export interface TcpTransportOptions {
  /**
   * Fails connecting, and each call, after this many milliseconds without the connection or
   * the reply; the connection stays usable for other calls. Waits for ever when left out.
   */
  timeoutMs?: number;
}

/**
 * JSON-RPC over TCP to sessiond's TCP listener (by default 127.0.0.1:7400), one JSON value per
 * line each way, on one connection at a time (Node.js only). Calls are pipelined: each request
 * is written at once, and the replies, in whatever order the server sends them, are matched to
 * their calls by id.
 *
 * When the connection ends other than by close (sessiond closes a connection idle for
 * readIdleTimeoutSeconds, 5 minutes by default; a restart or the network may end one too; a
 * server at its maxConnections or shutting down refuses one with a -32000 error), the next
 * call connects again. Calls in flight when it ended reject with the loss, or the refusal as a
 * {@link SessiondError}, and are not sent again, since the server may have run them.
 */
export class TcpTransport implements Transport {
  private isClosed = false;
  /** Aborts the connect under way, if any: close does not wait for it. */
  private connecting: AbortController | undefined;

  private constructor(
    private readonly address: string,
    private readonly options: TcpTransportOptions,
    /** The connection calls go on, or its making. */
    private connection: Promise<TcpConnection>,
  ) {}

  /** Connects to a sessiond TCP listener at address, "host:port". */
  static async connect(address: string, options: TcpTransportOptions = {}): Promise<TcpTransport> {
    const first = await TcpConnection.connect(address, options);
    return new TcpTransport(address, options, Promise.resolve(first));
  }

  async call(method: string, params?: unknown): Promise<JsonRpcResponse> {
    if (this.isClosed) {
      throw new Error("sessiond: transport closed");
    }
    const current = this.connection;
    let connection = await current.catch(() => undefined); // a failed reconnect: try again
    if (connection === undefined || connection.lost()) {
      if (this.isClosed) {
        throw new Error("sessiond: transport closed");
      }
      if (this.connection === current) {
        this.connecting = new AbortController();
        this.connection = TcpConnection.connect(this.address, this.options, this.connecting.signal);
      }
      connection = await this.connection;
    }
    if (this.isClosed) {
      await connection.close(); // made by a call that resumed before close did
      throw new Error("sessiond: transport closed");
    }
    return connection.call(method, params);
  }

  /** Closes the connection, or ends the connect under way; calls still waiting for a reply reject. */
  async close(): Promise<void> {
    this.isClosed = true;
    this.connecting?.abort();
    const connection = await this.connection.catch(() => undefined);
    await connection?.close();
  }
}

/** One connection of a {@link TcpTransport}. */
class TcpConnection {
  private nextId = 0;
  private closedByUs = false;
  private readonly waiting = new Map<number, Waiting>();
  private buffered = "";
  private failure: Error | undefined;
  /**
   * An error with id null that came while no call was waiting and no numbered reply since:
   * the server's refusal of the connection (tooManyConnections, shuttingDown), which calls
   * fail with once the server closes it.
   */
  private unclaimed: JsonRpcResponse | undefined;
  private readonly closed: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    private readonly options: TcpTransportOptions,
  ) {
    socket.setEncoding("utf8");
    socket.setNoDelay(true);
    socket.on("data", (chunk: string) => this.receive(chunk));
    // A refusal the server sent before it closed (unclaimed) is why the connection ended,
    // whether it closed cleanly or reset.
    socket.on("error", (error) => this.stop(new Error(`sessiond: connection lost: ${error.message}`, { cause: error }), true));
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.stop(new Error("sessiond: connection lost: the server closed it"), true);
        resolve();
      });
    });
  }

  /** Connects to address; signal, when it aborts, ends the connect. */
  static connect(address: string, options: TcpTransportOptions, signal?: AbortSignal): Promise<TcpConnection> {
    const { host, port } = splitAddress(address);
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const fail = (error: Error) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", aborted);
        socket.destroy();
        reject(error);
      };
      const aborted = () => fail(new Error("sessiond: transport closed"));
      const timer = startTimer(options.timeoutMs, () => fail(new Error(`sessiond: no connection to ${address} within ${options.timeoutMs} ms`)));
      signal?.addEventListener("abort", aborted, { once: true });
      socket.once("error", fail);
      socket.once("connect", () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", aborted);
        socket.removeAllListeners("error");
        resolve(new TcpConnection(socket, options));
      });
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
        reject(new Error(`sessiond: no reply to ${method} within ${this.options.timeoutMs} ms`));
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
      this.socket.write(encodeRequest(id, method, params) + "\n");
    });
  }

  /** Reports whether the connection ended other than by close: lost, or refused by the server. */
  lost(): boolean {
    return this.failure !== undefined && !this.closedByUs;
  }

  async close(): Promise<void> {
    this.closedByUs = true;
    this.stop(new Error("sessiond: transport closed"));
    this.socket.destroy();
    await this.closed;
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
    let id = reply.id;
    if (id === null && reply.error != null && this.waiting.size === 0) {
      this.unclaimed = reply; // perhaps the server's refusal: what a close that follows means
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

  private stop(error: Error, byServer = false): void {
    if (byServer && this.failure === undefined && this.unclaimed?.error != null) {
      this.failure = SessiondError.fromWire(this.unclaimed.error);
    }
    this.failure ??= error;
    for (const waiting of this.waiting.values()) {
      waiting.reject(this.failure);
    }
    this.waiting.clear();
  }
}

/** Calls fire after ms milliseconds; no timer when ms is left out. */
function startTimer(ms: number | undefined, fire: () => void): ReturnType<typeof setTimeout> | undefined {
  return ms === undefined ? undefined : setTimeout(fire, ms);
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`sessiond: address ${JSON.stringify(address)} is not host:port`);
  }
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  return { host: host === "" ? "127.0.0.1" : host, port };
}
