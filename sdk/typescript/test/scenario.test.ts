// The SDK scenario against a live sessiond, over TCP, HTTP and stdio.
//
// sdk/sdktest (go test ./sdk/sdktest) compiles this package, starts the server and runs these
// tests with its addresses in SESSIOND_TCP_ADDR and SESSIOND_HTTP_URL, the admin password in
// SESSIOND_ADMIN_PASSWORD, SESSIOND_RECORD_FILE, where every call is recorded for the Go test
// to check against the schemas, and the sessiond command and test configuration in
// SESSIOND_BINARY and SESSIOND_CONFIG, which the stdio tests start. Without them the tests are
// skipped.

import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import {
  HttpTransport,
  SessiondClient,
  ServerExitedError,
  SessiondError,
  StdioTransport,
  TcpTransport,
  TransportClosedError,
  type JsonRpcResponse,
  type Session,
  type Transport,
} from "../src/index.js";

const tcpAddr = process.env.SESSIOND_TCP_ADDR ?? "";
const httpURL = process.env.SESSIOND_HTTP_URL ?? "";
const adminPassword = process.env.SESSIOND_ADMIN_PASSWORD ?? "";
const recordFile = process.env.SESSIOND_RECORD_FILE ?? "";
const binary = process.env.SESSIOND_BINARY ?? "";
const config = process.env.SESSIOND_CONFIG ?? "";
const skip = tcpAddr && httpURL && adminPassword ? false : "needs a live sessiond: run `go test ./sdk/sdktest`, which starts one";
const skipStdio = binary && config && adminPassword ? false : "needs the sessiond command: run `go test ./sdk/sdktest`, which builds it";
const password = "scenario-password";

/** A transport that records every call and its reply in recordFile, one JSON line each. */
class Recorder implements Transport {
  constructor(
    private readonly inner: Transport,
    private readonly bearer?: string,
  ) {}

  async call(method: string, params?: unknown): Promise<JsonRpcResponse> {
    const reply = await this.inner.call(method, params);
    const record: Record<string, unknown> = { sdk: "typescript", method, params: params ?? null };
    if (this.bearer) {
      record.bearer = this.bearer;
    }
    if (reply.error != null) {
      record.error = reply.error;
    } else {
      record.result = reply.result;
    }
    if (recordFile) {
      appendFileSync(recordFile, JSON.stringify(record) + "\n");
    }
    return reply;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Awaits promise, which must reject with a SessiondError of code. */
async function rejectsWith(promise: Promise<unknown>, code: number): Promise<SessiondError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SessiondError, `want a SessiondError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`want a SessiondError with code ${code}; the call succeeded`);
}

/**
 * The scenario every SDK runs: an admin creates an account; the account logs in, describes and
 * alters its session, tickles it, creates an API key, lists its sessions and revokes the key;
 * then three errors come back typed. withBearer, for HTTP, makes a client sending a bearer token.
 */
async function scenario(client: SessiondClient, user: string, withBearer?: (token: string) => SessiondClient): Promise<void> {
  const admin = await client.createSession({ username: "admin", password: adminPassword });
  const account = await client.createAccount({
    authToken: admin.authToken,
    username: user,
    password,
    accountDescription: `made by the ${user} scenario`,
  });
  assert.equal(account.username, user);
  assert.deepEqual(account.roles, []);
  assert.equal(account.lastLoginTimestamp, null);

  const login: Session = await client.createSession({ username: user, password, description: "scenario login" });
  assert.ok(login.authToken);
  assert.equal(login.username, user);
  assert.equal(login.permanentSession, false);
  assert.notEqual(login.expiresAt, null);

  const described = await client.describeSessions({ authToken: login.authToken, sessionIds: [login.sessionId] });
  assert.deepEqual(described.sessions.map((s) => s.sessionId), [login.sessionId]);
  assert.equal(described.sessions[0]?.description, "scenario login");

  const altered = await client.alterSession({
    authToken: login.authToken,
    description: "altered",
    idleConnectionTimeoutSeconds: 120,
    defaultResponseOptions: { dataFormat: "objects" },
  });
  assert.equal(altered.description, "altered");
  assert.equal(altered.idleConnectionTimeoutSeconds, 120);
  assert.equal(altered.defaultResponseOptions.dataFormat, "objects");

  // A tickle, with the authToken as the session key (the same kind of credential).
  const tickle = { label: "TickleTime", value: new Date().toISOString() };
  assert.equal(await client.setUserPreference({ sessionKey: login.authToken, bean: tickle }), true);
  // The NetX methods, positional on the wire.
  const key = await client.authenticate({ login: user, password });
  assert.ok(key !== "" && key !== "-1", `authenticate = ${key}`);
  assert.equal(await client.setUserPreference({ sessionKey: key, bean: { label: "color", value: "blue" } }), true);
  assert.equal(await client.getUserPreference({ sessionKey: key, label: "color" }), "blue");
  assert.equal(await client.getUserPreference({ sessionKey: key, label: "unset" }), null);
  assert.equal(await client.logout({ sessionKey: key }), true);

  const apiKey = await client.createSession({ username: user, password, description: "scenario API key", permanentSession: true });
  assert.equal(apiKey.permanentSession, true);
  assert.equal(apiKey.idleConnectionTimeoutSeconds, -1);
  assert.equal(apiKey.expiresAt, null);

  const listed = await client.listSessions({ authToken: login.authToken });
  const ids = listed.sessions.map((s) => s.sessionId);
  assert.ok(ids.includes(login.sessionId) && ids.includes(apiKey.sessionId), `listSessions = ${ids.join(", ")}`);
  assert.ok(listed.sessions.every((s) => s.authToken === undefined), "listSessions shows tokens");
  if (withBearer !== undefined && apiKey.authToken !== undefined) {
    // Over HTTP the API key can stand in for authToken as a bearer token.
    const keyed = withBearer(apiKey.authToken);
    assert.equal((await keyed.listSessions()).sessions.length, listed.sessions.length);
    assert.equal(await keyed.setUserPreference({ bean: { label: "TickleTime", value: "x" } }), true);
    await keyed.close();
  }

  const revoked = await client.revokeSessions({ authToken: login.authToken, sessionIds: [apiKey.sessionId] });
  assert.equal(revoked.revoked, 1);
  await rejectsWith(client.pingSession({ authToken: apiKey.authToken }), SessiondError.INVALID_AUTH_TOKEN);

  // Three errors, typed.
  const badPassword = await rejectsWith(client.createSession({ username: user, password: "wrong" }), SessiondError.INVALID_CREDENTIALS);
  assert.equal(badPassword.reason, "invalidCredentials");
  await rejectsWith(client.pingSession({ authToken: "not-a-token" }), SessiondError.INVALID_AUTH_TOKEN);
  const badParams = await rejectsWith(client.createSession({ username: "", password }), SessiondError.INVALID_PARAMS);
  assert.equal(badParams.field, "username");

  const doc = await client.discover();
  assert.equal(doc.openrpc, "1.3.2");
  assert.ok(doc.components !== undefined, "rpc.discover lost components");
  await client.deleteSession({ authToken: login.authToken });
  assert.deepEqual((await client.dropAccounts({ authToken: admin.authToken, usernames: [user] })).dropped, [user]);
}

test("scenario over TCP", { skip }, async () => {
  const client = new SessiondClient(new Recorder(await TcpTransport.connect(tcpAddr)));
  try {
    await scenario(client, "ts-tcp");
  } finally {
    await client.close();
  }
});

test("scenario over HTTP", { skip }, async () => {
  const client = new SessiondClient(new Recorder(new HttpTransport(httpURL)));
  const withBearer = (token: string) => new SessiondClient(new Recorder(new HttpTransport(httpURL, { bearerToken: token }), token));
  await scenario(client, "ts-http", withBearer);
});

test("pipelined calls on one TCP connection get their own replies", { skip }, async () => {
  const client = new SessiondClient(await TcpTransport.connect(tcpAddr));
  try {
    const admin = await client.createSession({ username: "admin", password: adminPassword });
    const sessions = await Promise.all(
      [0, 1, 2, 3].map((i) => client.createSession({ username: "admin", password: adminPassword, description: `ts pipelined ${i}` })),
    );
    await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const want = sessions[i % sessions.length]!;
        const got = await client.describeSessions({ authToken: admin.authToken, sessionIds: [want.sessionId] });
        assert.deepEqual(got.sessions.map((s) => s.description), [want.description]);
      }),
    );
  } finally {
    await client.close();
  }
});

/** Starts `sessiond serve --stdio` with the test configuration and extra arguments. */
function startStdio(...args: string[]): Promise<StdioTransport> {
  return StdioTransport.start(binary, ["serve", "--stdio", "--config", config, "--log-format", "json", ...args], {
    env: { ...process.env, SESSIOND_ADMIN_PASSWORD: adminPassword },
  });
}

test("scenario over stdio", { skip: skipStdio }, async () => {
  const transport = await startStdio("--in-memory");
  const client = new SessiondClient(new Recorder(transport));
  try {
    await scenario(client, "ts-stdio");
  } finally {
    await client.close();
  }
  assert.equal(transport.pid !== undefined && isRunning(transport.pid), false, "close returned before the server exited");
});

test("a stdio server that exits early fails calls, and close, with its exit status and the end of its stderr", { skip: skipStdio }, async () => {
  const data = mkdtempSync(join(tmpdir(), "sessiond-ts-stdio-"));
  const first = await startStdio("--data", data);
  try {
    await new SessiondClient(first).pingSession({}); // it holds the data directory
    const second = await startStdio("--data", data); // which the second finds in use, and exits
    const client = new SessiondClient(second);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(client.pingSession({}), (error: unknown) => {
        assert.ok(error instanceof ServerExitedError, String(error));
        assert.equal(error.exitCode, 1);
        assert.match(error.stderrTail, /is in use by another process/);
        assert.match(error.message, /^sessiond: the server exited \(exit status 1\); its stderr ends: .*is in use by another process/s);
        return true;
      });
    }
    await assert.rejects(client.close(), /exit status 1.*is in use by another process/s);
  } finally {
    await first.close();
    rmSync(data, { recursive: true, force: true });
  }
});

test("closing a stdio transport lets the logins in flight get their sessions, and rejects later calls unsent", { skip: skipStdio }, async () => {
  // The default configuration: hashing the password takes a login tens of ms.
  const transport = await StdioTransport.start(binary, ["serve", "--stdio", "--in-memory"], {
    env: { ...process.env, SESSIOND_ADMIN_PASSWORD: adminPassword },
  });
  const client = new SessiondClient(transport);
  // Each call writes its request before it returns: all three are sent before close.
  const logins = Promise.allSettled([1, 2, 3].map(() => client.createSession({ username: "admin", password: adminPassword })));
  await client.close();
  for (const login of await logins) {
    assert.equal(login.status, "fulfilled", `a login in flight at close: ${login.status === "rejected" ? login.reason : ""}`);
    assert.ok(login.status === "fulfilled" && login.value.authToken !== "", "a login in flight at close got no authToken");
  }
  await assert.rejects(client.pingSession({}), TransportClosedError);
});

test("starting a stdio server that is not there rejects, naming the command", async () => {
  await assert.rejects(StdioTransport.start("/nonexistent/sessiond", ["serve", "--stdio"]), /^ConnectError: sessiond: starting \/nonexistent\/sessiond: spawn .*ENOENT/);
});

/** Reports whether a process with id pid runs. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
