import { connect, type Socket } from "node:net";

import { StreamConnection, startTimer } from "./stream.js";
import { ConnectError, ConnectionLostError, TransportClosedError, TransportTimeoutError, type JsonRpcResponse, type Transport } from "./transport.js";

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
 * `SessiondError`, and are not sent again, since the server may have run them.
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
      throw new TransportClosedError("sessiond: transport closed");
    }
    const current = this.connection;
    let connection = await current.catch(() => undefined); // a failed reconnect: try again
    if (connection === undefined || connection.lost()) {
      if (this.isClosed) {
        throw new TransportClosedError("sessiond: transport closed");
      }
      if (this.connection === current) {
        connection?.close().catch(() => {}); // its socket, if the server has not closed it (after a refusal, say)
        this.connecting = new AbortController();
        this.connection = TcpConnection.connect(this.address, this.options, this.connecting.signal);
      }
      connection = await this.connection;
    }
    if (this.isClosed) {
      await connection.close(); // made by a call that resumed before close did
      throw new TransportClosedError("sessiond: transport closed");
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

/** One connection of a {@link TcpTransport}: a {@link StreamConnection} on a socket. */
class TcpConnection {
  private constructor(
    private readonly socket: Socket,
    private readonly stream: StreamConnection,
  ) {}

  /** Resolves when the socket has closed and the calls have been failed. */
  get closed(): Promise<void> {
    return this.stream.closed;
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
      const aborted = () => fail(new TransportClosedError("sessiond: transport closed"));
      const timer = startTimer(options.timeoutMs, () =>
        fail(new TransportTimeoutError(`sessiond: no connection to ${address} within ${options.timeoutMs} ms`)),
      );
      signal?.addEventListener("abort", aborted, { once: true });
      socket.once("error", (error) => fail(new ConnectError(`sessiond: cannot connect to ${address}: ${error.message}`, { cause: error })));
      socket.once("connect", () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", aborted);
        socket.removeAllListeners("error");
        socket.setNoDelay(true);
        const stream = new StreamConnection(socket, socket, {
          timeoutMs: options.timeoutMs,
          peer: address,
          lost: (cause) =>
            cause === undefined
              ? new ConnectionLostError(`sessiond: connection to ${address} lost: the server closed it`)
              : new ConnectionLostError(`sessiond: connection to ${address} lost: ${cause.message}`, { cause }),
        });
        resolve(new TcpConnection(socket, stream));
      });
    });
  }

  call(method: string, params?: unknown): Promise<JsonRpcResponse> {
    return this.stream.call(method, params);
  }

  /** Reports whether the connection ended other than by close: lost, or refused by the server. */
  lost(): boolean {
    return this.stream.lost();
  }

  async close(): Promise<void> {
    this.stream.stopWith(new TransportClosedError("sessiond: transport closed"));
    this.socket.destroy();
    await this.stream.closed;
  }
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
