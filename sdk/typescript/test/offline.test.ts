// Tests of the TypeScript SDK that need no server: a fake transport answers.

import assert from "node:assert/strict";
import { test } from "node:test";

import { SessiondClient, SessiondError, type JsonRpcResponse, type Transport } from "../src/index.js";

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
    return true;
  });
  // The reason is in the message without a field too.
  const refused = new SessiondError(-32000, "Server unavailable", { reason: "tooManyConnections", limit: 1 });
  assert.equal(refused.message, "Server unavailable (code -32000): tooManyConnections");
  assert.equal(SessiondError.INVALID_AUTH_TOKEN, 12031);
  assert.equal(SessiondError.INVALID_CREDENTIALS, 450);
});
