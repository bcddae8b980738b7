// Tests of the TypeScript SDK that need no server: a fake transport answers.

import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { test } from "node:test";

import {
  ConnectError,
  ConnectionLostError,
  HttpTransport,
  SessiondClient,
  ServerExitedError,
  SessiondError,
  StdioTransport,
  TcpTransport,
  TransportClosedError,
  TransportError,
  TransportTimeoutError,
  type JsonRpcResponse,
  type Transport,
} from "../src/index.js";

/** Answers every call with reply and remembers the params it was given. */
class FakeTransport implements Transport {
  readonly calls: Array<[string, unknown]> = [];

  constructor(private readonly reply: JsonRpcResponse) {}

  async call(method: string, params?: unknown): Promise<JsonRpcResponse> {
    this.calls.push([method, params]);
    return this.reply;
  }

  async close(): Promise<void> {}
}

test("NetX methods send positional params, by name when the session key is left out", async () => {
  const fake = new FakeTransport({ jsonrpc: "2.0", id: 1, result: true });
  const client = new SessiondClient(fake);
  const bean = { label: "TickleTime", value: "now" };
  assert.equal(await client.setUserPreference({ sessionKey: "key", bean }), true);
  await client.setUserPreference({ bean });
  await client.authenticate({ login: "alice", password: "" });
  await client.logout({});
  assert.deepEqual(fake.calls, [
    ["setUserPreference", ["key", bean]],
    ["setUserPreference", { bean }],
    ["authenticate", ["alice", ""]],
    ["logout", {}],
  ]);
});

test("errors are SessiondErrors with the code, reason and field", async () => {
  const fake = new FakeTransport({
    jsonrpc: "2.0",
    id: 1,
    error: { code: -32602, message: "Invalid params", data: { reason: "must be 1 to 64 bytes", field: "username" } },
  });
  const client = new SessiondClient(fake);
  await assert.rejects(client.createSession({ username: "", password: "" }), (error: unknown) => {
    assert.ok(error instanceof SessiondError);
    assert.equal(error.code, SessiondError.INVALID_PARAMS);
    assert.equal(error.field, "username");
    assert.equal(error.reason, "must be 1 to 64 bytes");
    assert.equal(error.message, "Invalid params (code -32602): username: must be 1 to 64 bytes");
    assert.equal(error.serverMessage, "Invalid params");
    return true;
  });
  // The reason is in the message without a field too.
  const refused = new SessiondError(-32000, "Server unavailable", { reason: "tooManyConnections", limit: 1 });
  assert.equal(refused.message, "Server unavailable (code -32000): tooManyConnections");
  assert.equal(SessiondError.INVALID_AUTH_TOKEN, 12031);
  assert.equal(SessiondError.INVALID_CREDENTIALS, 450);
});

/** Starts a TCP server on a free loopback port that hands each connection to serve. */
async function listen(serve: (socket: import("node:net").Socket) => void): Promise<{ server: Server; address: string }> {
  const server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { server, address: `127.0.0.1:${port}` };
}

test("a TCP call with timeoutMs fails when no reply comes, and the connection stays usable", async () => {
  let requests = 0;
  const { server, address } = await listen((socket) => {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      for (const line of chunk.split("\n").filter((l) => l !== "")) {
        // The first request is never answered; later ones are.
        if (requests++ > 0) {
          const { id } = JSON.parse(line) as { id: number };
          socket.write(JSON.stringify({ jsonrpc: "2.0", id, result: {} }) + "\n");
        }
      }
    });
  });
  const transport = await TcpTransport.connect(address, { timeoutMs: 200 });
  try {
    await assert.rejects(transport.call("pingSession", {}), /^TransportTimeoutError: sessiond: no reply to pingSession from 127\.0\.0\.1:\d+ within 200 ms$/);
    assert.deepEqual((await transport.call("pingSession", {})).result, {});
  } finally {
    await transport.close();
    server.close();
  }
});

test("a TCP connection the server refuses fails calls with the refusal", async () => {
  const refusal = { code: -32000, message: "Server unavailable", data: { reason: "tooManyConnections", limit: 1 } };
  const { server, address } = await listen((socket) => {
    socket.end(JSON.stringify({ jsonrpc: "2.0", error: refusal, id: null }) + "\n");
  });
  const transport = await TcpTransport.connect(address);
  try {
    await new Promise((resolve) => setTimeout(resolve, 100)); // the refusal and the close have come
    await assert.rejects(new SessiondClient(transport).pingSession({ authToken: "x" }), (error: unknown) => {
      assert.ok(error instanceof SessiondError, String(error));
      assert.equal(error.reason, "tooManyConnections");
      return true;
    });
  } finally {
    await transport.close();
    server.close();
  }
});

test("an HTTP call whose server closes without a reply says so, with the cause", async () => {
  // The server reads the request, then closes without a reply.
  const { server, address } = await listen((socket) => socket.once("data", () => socket.destroy()));
  const transport = new HttpTransport(`http://${address}/`, { timeoutMs: 5000 });
  try {
    await assert.rejects(transport.call("pingSession", {}), (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /^sessiond: no reply to pingSession from http:\/\/127\.0\.0\.1:\d+\/: .+/);
      assert.doesNotMatch(error.message, /timeout|aborted/i, "the close, not the timeout, ended it");
      assert.notEqual(error.cause, undefined);
      return true;
    });
  } finally {
    server.close();
  }
});

test("an HTTP call with timeoutMs fails when no reply comes", async () => {
  const sockets: import("node:net").Socket[] = [];
  const { server, address } = await listen((socket) => void sockets.push(socket));
  const transport = new HttpTransport(`http://${address}/`, { timeoutMs: 200 });
  try {
    await assert.rejects(transport.call("pingSession", {}), /^TransportTimeoutError: sessiond: no reply to pingSession from http:\/\/127\.0\.0\.1:\d+\/ within 200 ms$/);
  } finally {
    for (const socket of sockets) {
      socket.destroy();
    }
    server.close();
  }
});

test("closing an HTTP transport rejects the call in flight and refuses later ones", async () => {
  // The server reads the request and never answers.
  const sockets: import("node:net").Socket[] = [];
  const { server, address } = await listen((socket) => void sockets.push(socket));
  const transport = new HttpTransport(`http://${address}/`);
  try {
    const call = transport.call("pingSession", {});
    await new Promise((resolve) => setTimeout(resolve, 100)); // the request is out
    await transport.close();
    await assert.rejects(call, /^TransportClosedError: sessiond: transport closed: no reply to pingSession$/);
    await assert.rejects(transport.call("pingSession", {}), /^TransportClosedError: sessiond: transport closed$/);
  } finally {
    for (const socket of sockets) {
      socket.destroy();
    }
    server.close();
  }
});

test("a TCP transport connects again once the server closed its connection", async () => {
  let accepted = 0;
  const { server, address } = await listen((socket) => {
    accepted++;
    // Answers one request, then closes, as sessiond closes an idle connection.
    socket.setEncoding("utf8");
    socket.once("data", (chunk: string) => {
      const { id } = JSON.parse(chunk.split("\n")[0]) as { id: number };
      socket.end(JSON.stringify({ jsonrpc: "2.0", id, result: {} }) + "\n");
    });
  });
  const transport = await TcpTransport.connect(address, { timeoutMs: 5000 });
  try {
    for (let i = 0; i < 3; i++) {
      const reply = await transport.call("pingSession", {});
      assert.deepEqual(reply.result, {});
      await connectionEnded(transport);
    }
  } finally {
    await transport.close();
    server.close();
  }
  assert.equal(accepted, 3);
  await assert.rejects(transport.call("pingSession", {}), /transport closed/);
});

test("after the server refused the TCP connection with no call in flight, calls connect again and work once it accepts", async () => {
  const refusal = { code: -32000, message: "Server unavailable", data: { reason: "tooManyConnections", limit: 1 } };
  let accepted = 0;
  let refusing = true;
  const { server, address } = await listen((socket) => {
    accepted++;
    if (refusing) {
      socket.end(JSON.stringify({ jsonrpc: "2.0", error: refusal, id: null }) + "\n");
      return;
    }
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      for (const line of chunk.split("\n").filter((l) => l !== "")) {
        const { id } = JSON.parse(line) as { id: number };
        socket.write(JSON.stringify({ jsonrpc: "2.0", id, result: {} }) + "\n");
      }
    });
  });
  const transport = await TcpTransport.connect(address, { timeoutMs: 5000 });
  try {
    await connectionEnded(transport); // refused while no call was in flight
    // While the server refuses, each call meets a refusal of its own connection.
    const client = new SessiondClient(transport);
    await assert.rejects(client.pingSession({}), (error: unknown) => error instanceof SessiondError && error.reason === "tooManyConnections");
    assert.equal(accepted, 2);
    await connectionEnded(transport);
    refusing = false; // a slot is free
    for (let i = 0; i < 2; i++) {
      await client.pingSession({});
    }
    assert.equal(accepted, 3);
  } finally {
    await transport.close();
    server.close();
  }
});

test("a refusal while several TCP calls wait fails each of them with it, and the next call connects again", async () => {
  const refusal = { code: -32000, message: "Server unavailable", data: { reason: "shuttingDown" } };
  let accepted = 0;
  const { server, address } = await listen((socket) => {
    accepted++;
    const first = accepted === 1;
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
      const lines = received.split("\n");
      received = lines.pop() ?? "";
      for (const line of lines.filter((l) => l !== "")) {
        const { id } = JSON.parse(line) as { id: number };
        if (!first) {
          socket.write(JSON.stringify({ jsonrpc: "2.0", id, result: {} }) + "\n");
        } else if (id === 3) {
          // The three calls wait: the server refuses the connection, running none of them.
          socket.end(JSON.stringify({ jsonrpc: "2.0", error: refusal, id: null }) + "\n");
        }
      }
    });
  });
  const transport = await TcpTransport.connect(address, { timeoutMs: 5000 });
  try {
    const calls = [1, 2, 3].map(() => transport.call("pingSession", {}));
    for (const call of calls) {
      await assert.rejects(call, (error: unknown) => {
        assert.ok(error instanceof SessiondError, String(error));
        assert.equal(error.reason, "shuttingDown");
        return true;
      });
    }
    assert.deepEqual((await transport.call("pingSession", {})).result, {});
    assert.equal(accepted, 2);
  } finally {
    await transport.close();
    server.close();
  }
});

/** Resolves when the client has seen the end of the transport's current connection. */
async function connectionEnded(transport: TcpTransport): Promise<void> {
  await (await (transport as unknown as { connection: Promise<{ closed: Promise<void> }> }).connection).closed;
}

test("closing a TCP transport while a call connects again leaves no connection open", async () => {
  let open = 0;
  let allClosed: () => void = () => {};
  const { server, address } = await listen((socket) => {
    open++;
    socket.on("error", () => {});
    socket.on("close", () => {
      if (--open === 0) {
        allClosed();
      }
    });
    if (open === 1) {
      socket.end(); // the first connection: closed at once, as an idle one is
    }
  });
  const transport = await TcpTransport.connect(address);
  await (transport as unknown as { connection: Promise<{ closed: Promise<void> }> }).connection.then((c) => c.closed);
  try {
    // The call resumes first and starts a connect; close comes in the same tick.
    const call = transport.call("pingSession", {});
    const closing = transport.close();
    await assert.rejects(call, /transport closed/);
    await closing;
    if (open > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          allClosed = resolve;
        }),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, 5000);
        }),
      ]);
      clearTimeout(timer);
    }
    assert.equal(open, 0, "a connection the transport made is still open");
  } finally {
    server.close();
  }
});

test("closing a TCP transport that got a stray id-null error says it was closed", async () => {
  const stray = { code: -32600, message: "Invalid Request", data: { reason: "requestTooLarge", limit: 1 } };
  const { server, address } = await listen((socket) => socket.write(JSON.stringify({ jsonrpc: "2.0", error: stray, id: null }) + "\n"));
  const transport = await TcpTransport.connect(address);
  await new Promise((resolve) => setTimeout(resolve, 100)); // the stray error has come
  await transport.close();
  server.close();
  await assert.rejects(transport.call("pingSession", {}), /transport closed/);
});

test("after a TCP call timed out and its late reply came, an id-null error is the one waiting call's", async () => {
  const tooLarge = { code: -32600, message: "Invalid Request", data: { reason: "requestTooLarge", limit: 1 } };
  let first: number | undefined;
  const { server, address } = await listen((socket) => {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      for (const line of chunk.split("\n").filter((l) => l !== "")) {
        const { id } = JSON.parse(line) as { id: number };
        if (first === undefined) {
          first = id; // answered only once the next request comes, after the timeout
          continue;
        }
        socket.write(JSON.stringify({ jsonrpc: "2.0", id: first, result: {} }) + "\n");
        socket.write(JSON.stringify({ jsonrpc: "2.0", error: tooLarge, id: null }) + "\n");
      }
    });
  });
  const transport = await TcpTransport.connect(address, { timeoutMs: 300 });
  try {
    await assert.rejects(transport.call("pingSession", {}), /no reply to pingSession from 127\.0\.0\.1:\d+ within 300 ms/);
    const reply = await transport.call("pingSession", {});
    assert.equal((reply.error?.data as { reason?: string } | undefined)?.reason, "requestTooLarge");
  } finally {
    await transport.close();
    server.close();
  }
});

test("transport failures are TransportErrors of a class for each kind, naming the method and the address", async () => {
  /** Checks that promise rejects with an instance of kind, a TransportError, whose message matches message. */
  const rejectsAs = (promise: Promise<unknown>, kind: new (...args: never[]) => TransportError, message: RegExp) =>
    assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof kind && error instanceof TransportError, `want a ${kind.name}, got ${String(error)}`);
      assert.ok(!(error instanceof SessiondError));
      assert.equal(error.name, kind.name);
      assert.match(error.message, message);
      return true;
    });
  // A port nobody listens on: a server's, closed.
  const closed = await listen(() => {});
  const closedAddress = closed.address;
  await new Promise((resolve) => closed.server.close(resolve));
  await rejectsAs(TcpTransport.connect(closedAddress), ConnectError, /^sessiond: cannot connect to 127\.0\.0\.1:\d+: connect ECONNREFUSED/);
  await rejectsAs(new HttpTransport(`http://${closedAddress}/`).call("pingSession", {}), ConnectError, /^sessiond: cannot connect to http:\/\/127\.0\.0\.1:\d+\/ for pingSession: .*ECONNREFUSED/);

  // A server that reads a request and closes the connection without a reply.
  const { server, address } = await listen((socket) => socket.once("data", () => socket.destroy()));
  try {
    const tcp = await TcpTransport.connect(address, { timeoutMs: 5000 });
    await rejectsAs(tcp.call("pingSession", {}), ConnectionLostError, new RegExp(`^sessiond: connection to ${address} lost: `));
    await tcp.close();
    await rejectsAs(tcp.call("pingSession", {}), TransportClosedError, /^sessiond: transport closed$/);
    await rejectsAs(new HttpTransport(`http://${address}/`).call("pingSession", {}), ConnectionLostError, /^sessiond: no reply to pingSession from http:/);
  } finally {
    server.close();
  }

  // A server that never answers.
  const silent = await listen(() => {});
  try {
    const tcp = await TcpTransport.connect(silent.address, { timeoutMs: 100 });
    await rejectsAs(tcp.call("pingSession", {}), TransportTimeoutError, new RegExp(`^sessiond: no reply to pingSession from ${silent.address} within 100 ms$`));
    await tcp.close();
    await rejectsAs(new HttpTransport(`http://${silent.address}/`, { timeoutMs: 100 }).call("pingSession", {}), TransportTimeoutError, /^sessiond: no reply to pingSession from http:.* within 100 ms$/);
  } finally {
    silent.server.close();
  }
});

test("a stdio server that exits is reported with the last 4 KiB of its stderr, as in the Go SDK", async () => {
  // 40 lines of 100 bytes: all of them fit in 4 KiB, the first would not in 2.
  const script = 'for (let i = 0; i < 40; i++) process.stderr.write("line " + String(i).padStart(2, "0") + " " + "x".repeat(91) + "\\n"); process.exit(3);';
  const transport = await StdioTransport.start(process.execPath, ["-e", script]);
  try {
    await assert.rejects(transport.call("pingSession", {}), (error: unknown) => {
      assert.ok(error instanceof ServerExitedError, String(error));
      assert.match(error.stderrTail, /^line 00 x+\nline 01 /);
      assert.match(error.stderrTail, /line 39 x+$/);
      return true;
    });
  } finally {
    await transport.close().catch(() => {});
  }
});

test("closing a stdio transport rejects a call that the server exits without answering with TransportClosedError", async () => {
  // A server that reads its input to the end and exits, answering nothing.
  const transport = await StdioTransport.start(process.execPath, ["-e", 'process.stdin.resume().on("end", () => process.exit(0));']);
  const unanswered = assert.rejects(transport.call("pingSession", {}), TransportClosedError);
  await transport.close();
  await unanswered;
});

test("closing a stdio transport returns soon after the server exits, though a process it started holds its output open", async () => {
  // The server starts a child that inherits its stdout and outlives it, then exits at the end of its input.
  const script = 'require("node:child_process").spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: ["ignore", "inherit", "ignore"] }).unref(); process.stdin.resume().on("end", () => process.exit(0));';
  const transport = await StdioTransport.start(process.execPath, ["-e", script]);
  const unanswered = assert.rejects(transport.call("pingSession", {}), TransportClosedError);
  const started = Date.now();
  await transport.close();
  await unanswered;
  assert.ok(Date.now() - started < 10_000, `close took ${Date.now() - started} ms`);
});
