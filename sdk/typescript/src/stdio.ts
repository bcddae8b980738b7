import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";

import { StreamConnection } from "./stream.js";
import { ConnectError, ServerExitedError, TransportClosedError, type JsonRpcResponse, type Transport } from "./transport.js";

/** How long close waits for the server to exit once its standard input is closed before killing it. */
const exitTimeoutMs = 10_000;
/** How much of the end of the server's stderr an error quotes. */
const stderrTailBytes = 4096;
/** How long an error waits, once the server's output has ended, for its exit and the rest of its stderr. */
const exitWaitMs = 2_000;
/** How long close waits, once the server has exited, for its output to end: a process it started may hold it open. */
const outputAfterExitMs = 1_000;

/** Options of a {@link StdioTransport}. */
export interface StdioTransportOptions {
  /** The server's environment (put SESSIOND_ADMIN_PASSWORD here); process.env when left out. */
  env?: NodeJS.ProcessEnv;
  /** The server's working directory; this process's when left out. */
  cwd?: string;
  /**
   * Receives the server's logs, its standard error, e.g. `process.stderr`; discarded when left
   * out. Either way the end of it is kept for the error of a server that exits early.
   */
  stderr?: Writable;
  /** Fails each call after this many milliseconds without its reply; waits for ever when left out. */
  timeoutMs?: number;
}

/** The exit of a server process: its status, or the signal that ended it. */
interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * JSON-RPC on the standard input and output of a sessiond server that it starts as a child
 * process (`sessiond serve --stdio …`), one JSON value per line each way (Node.js only). Calls
 * are pipelined as over TCP. When the server exits before {@link close}, calls in flight and
 * later ones reject with its exit status and the end of its stderr ("… is in use by another
 * process", say); a server is not started again.
 */
export class StdioTransport implements Transport {
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, Readable>,
    private readonly connection: StreamConnection,
    private readonly exited: Promise<Exit>,
    private readonly stderrTail: () => string,
  ) {}

  /** The process id of the server. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Starts command with args, a sessiond server serving its standard input and output, e.g.
   * `StdioTransport.start("sessiond", ["serve", "--stdio", "--in-memory"], { env })`, and
   * resolves once it runs; rejects if it cannot be started (no such file, say).
   */
  static start(command: string, args: readonly string[], options: StdioTransportOptions = {}): Promise<StdioTransport> {
    const child = spawn(command, args, { env: options.env, cwd: options.cwd, stdio: ["pipe", "pipe", "pipe"] });
    let tail = Buffer.alloc(0);
    const stderrEnded = new Promise<void>((resolve) => child.stderr.once("close", resolve));
    child.stderr.on("data", (chunk: Buffer) => {
      options.stderr?.write(chunk);
      tail = Buffer.concat([tail, chunk]);
      if (tail.length > 2 * stderrTailBytes) {
        tail = tail.subarray(tail.length - stderrTailBytes);
      }
    });
    const stderrTail = () => tailText(tail);
    const exited = new Promise<Exit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    return new Promise((resolve, reject) => {
      child.once("error", (error) => reject(new ConnectError(`sessiond: starting ${command}: ${error.message}`, { cause: error })));
      child.once("spawn", () => {
        const connection = new StreamConnection(child.stdout, child.stdin, {
          timeoutMs: options.timeoutMs,
          peer: "the stdio server",
          // The server's output ended: it has exited, or is about to. Wait (a little) for its
          // status and the rest of its stderr, which say why.
          lost: async (cause) => {
            const exit = await Promise.race([exited.then(async (exit) => (await withTimeout(stderrEnded, exitWaitMs), exit)), delay(exitWaitMs)]);
            return new ServerExitedError(exit?.code ?? null, exit?.signal ?? null, stderrTail(), { cause });
          },
        });
        resolve(new StdioTransport(child, connection, exited, stderrTail));
      });
    });
  }

  call(method: string, params?: unknown): Promise<JsonRpcResponse> {
    return this.connection.call(method, params);
  }

  /**
   * Closes the server's standard input, on which sessiond answers the calls in flight and
   * exits. Those calls get their replies; a call the server exits without answering rejects
   * with TransportClosedError, as do calls made once close has begun, which are not sent.
   * Waits for the exit, killing the server if it takes more than 10 seconds, and rejects if
   * the server's exit status was not 0.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.connection.drainWith(new TransportClosedError("sessiond: transport closed"));
      this.child.stdin.end();
      const timer = setTimeout(() => this.child.kill("SIGKILL"), exitTimeoutMs);
      const exit = await this.exited;
      clearTimeout(timer);
      // The last replies are handed out when the output ends, at the exit, unless a process
      // the server started holds it open: then the calls still waiting fail.
      await Promise.race([this.connection.closed, delay(outputAfterExitMs)]);
      this.connection.stopWith(new TransportClosedError("sessiond: transport closed"));
      if (exit.code !== 0) {
        throw new ServerExitedError(exit.code, exit.signal, this.stderrTail());
      }
    })();
    return this.closing;
  }
}

/** The last lines of the server's stderr, at most stderrTailBytes of them, trimmed. */
function tailText(tail: Buffer): string {
  let text = tail.subarray(Math.max(0, tail.length - stderrTailBytes)).toString("utf8");
  if (tail.length > stderrTailBytes) {
    text = "…" + text.slice(text.indexOf("\n") + 1); // from a line's start
  }
  return text.trim();
}

function delay(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms).unref());
}

function withTimeout(promise: Promise<void>, ms: number): Promise<void> {
  return Promise.race([promise, delay(ms).then(() => undefined)]);
}
