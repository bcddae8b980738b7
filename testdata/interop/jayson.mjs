// Interop check: drives a running sessiond over TCP with jayson's TCP client (a third-party
// JSON-RPC 2.0 client; newline-delimited, one connection per request) and asserts every reply.
//
// usage: node jayson.mjs HOST:PORT ADMIN_PASSWORD
// Prints "jayson interop: ok (...)" and exits 0, or prints each mismatch and exits 1.
import jayson from 'jayson';

const [addr, password] = process.argv.slice(2);
if (!addr || password === undefined) {
  console.error('usage: node jayson.mjs HOST:PORT ADMIN_PASSWORD');
  process.exit(2);
}
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
const port = Number(addr.slice(colon + 1));

// jayson's TCP client frames with '\n' by default; say so explicitly, since that is the
// server's framing.
const client = jayson.client.tcp({ host, port, delimiter: '\n' });
const isValidResponse = jayson.utils.Response.isValidResponse;

const failures = [];
let checks = 0;
function check(ok, what, detail) {
  checks++;
  if (!ok) {
    failures.push(`${what}${detail === undefined ? '' : `: ${detail}`}`);
  }
  return ok;
}

// exchange sends request (an object or a batch array) with jayson's client and resolves when
// the connection has closed, with jayson's parsed response and the raw bytes the server sent.
function exchange(request) {
  return new Promise((resolve, reject) => {
    let raw = '';
    let response;
    let callbacks = 0;
    const timer = setTimeout(() => {
      reject(new Error(`no reply within 15 s to ${JSON.stringify(request)}; got ${JSON.stringify(raw)}`));
    }, 15000);
    const onSocket = (conn) => {
      client.removeListener('tcp socket', onSocket);
      conn.on('data', (chunk) => {
        raw += chunk.toString();
      });
      conn.on('close', () => {
        clearTimeout(timer);
        resolve({ request, response, raw, callbacks });
      });
    };
    client.on('tcp socket', onSocket);
    client.request(request, (err, res) => {
      callbacks++;
      if (err) {
        clearTimeout(timer);
        reject(err);
        return;
      }
      response = res;
    });
  });
}

// describe shows one exchange's bytes for a failure message.
function describe(x) {
  return `request ${JSON.stringify(x.request)} reply bytes ${JSON.stringify(x.raw)}`;
}

// single sends one request and checks the framing and shape of its single reply.
async function single(request) {
  const x = await exchange(request);
  const what = `${request.method} (id ${JSON.stringify(request.id)})`;
  check(x.callbacks === 1, `${what}: jayson delivered ${x.callbacks} replies`, describe(x));
  check(x.raw.endsWith('\n') && x.raw.indexOf('\n') === x.raw.length - 1, `${what}: reply is not exactly one line`, describe(x));
  if (!check(isValidResponse(x.response, 2), `${what}: not a valid JSON-RPC 2.0 response`, describe(x))) {
    return x;
  }
  check(x.response.id === request.id, `${what}: reply id ${JSON.stringify(x.response.id)} does not echo the request id`, describe(x));
  return x;
}

function wantResult(x, what) {
  const r = x.response;
  check(r && r.error === undefined && r.result !== undefined, `${what}: want a result`, describe(x));
  return r ? r.result : undefined;
}

function wantError(x, what, code) {
  const r = x.response;
  check(r && r.error && r.error.code === code && typeof r.error.message === 'string', `${what}: want error ${code}`, describe(x));
}

async function main() {
  // createSession, named params, jayson-generated (UUID string) id.
  const create = await single(client.request('createSession', { username: 'admin', password, description: 'jayson interop' }));
  const session = wantResult(create, 'createSession') || {};
  check(typeof session.authToken === 'string' && session.authToken.length > 0, 'createSession: no authToken', describe(create));
  check(session.username === 'admin', 'createSession: username', describe(create));
  const token = session.authToken;

  // authenticate, positional params, numeric id; a wrong password gives "-1".
  const auth = await single(client.request('authenticate', ['admin', password], 42));
  const key = wantResult(auth, 'authenticate');
  check(typeof key === 'string' && key !== '-1' && key !== token, 'authenticate: want a new session key', describe(auth));
  const refused = await single(client.request('authenticate', ['admin', 'not-the-password'], 0));
  check(wantResult(refused, 'authenticate with a wrong password') === '-1', 'authenticate with a wrong password: want "-1"', describe(refused));

  // pingSession with the session key as an authToken.
  const ping = await single(client.request('pingSession', { authToken: key }, 'ping'));
  const pong = wantResult(ping, 'pingSession');
  check(pong && typeof pong === 'object' && Object.keys(pong).length === 0, 'pingSession: want {}', describe(ping));

  // A lone notification: jayson writes it, half-closes and expects no bytes back.
  const note = await exchange(client.request('pingSession', { authToken: token }, null));
  check(!('id' in note.request), 'notification: jayson put an id on it', JSON.stringify(note.request));
  check(note.raw === '' && note.response === undefined, 'notification: the server replied', describe(note));

  // Single errors: unknown method and a bad token.
  const unknown = await single(client.request('noSuchMethod', {}, 'unknown'));
  wantError(unknown, 'unknown method', -32601);
  const bad = await single(client.request('pingSession', { authToken: 'sdt_not-a-real-token' }, 'bad'));
  wantError(bad, 'pingSession with a bad token', 12031);

  // A batch: calls with string, numeric and zero ids, a notification and an unknown method.
  const batch = [
    client.request('pingSession', { authToken: token }, 'b-ping'),
    client.request('authenticate', ['admin', password], 7),
    client.request('pingSession', { authToken: key }, null), // notification: no reply
    client.request('noSuchMethod', ['x'], 'b-unknown'),
    client.request('pingSession', { authToken: 'sdt_not-a-real-token' }, 0),
    client.request('describeSessions', { authToken: token, authTokens: [token, key] }), // jayson UUID id
    client.request('authenticate', { login: 'admin', password: 'wrong' }, 'b-named-✓'),
  ];
  const bx = await exchange(batch);
  check(bx.callbacks === 1, `batch: jayson delivered ${bx.callbacks} replies`, describe(bx));
  check(bx.raw.endsWith('\n') && bx.raw.indexOf('\n') === bx.raw.length - 1, 'batch: reply is not exactly one line', describe(bx));
  const replies = Array.isArray(bx.response) ? bx.response : [];
  check(Array.isArray(bx.response), 'batch: reply is not an array', describe(bx));
  const calls = batch.filter((r) => 'id' in r);
  check(replies.length === calls.length, `batch: ${replies.length} replies, want ${calls.length}`, describe(bx));
  const byId = new Map();
  for (const r of replies) {
    check(isValidResponse(r, 2), 'batch: invalid element', JSON.stringify(r));
    check(!byId.has(r.id), `batch: id ${JSON.stringify(r.id)} answered twice`, describe(bx));
    byId.set(r.id, r);
  }
  for (const req of calls) {
    check(byId.has(req.id), `batch: no reply for id ${JSON.stringify(req.id)} (${req.method})`, describe(bx));
  }
  const one = (id) => ({ request: batch, raw: bx.raw, response: byId.get(id) });
  const bp = wantResult(one('b-ping'), 'batch pingSession');
  check(bp && Object.keys(bp).length === 0, 'batch pingSession: want {}', describe(bx));
  const bk = wantResult(one(7), 'batch authenticate');
  check(typeof bk === 'string' && bk !== '-1' && bk !== key, 'batch authenticate: want a new key', describe(bx));
  wantError(one('b-unknown'), 'batch unknown method', -32601);
  wantError(one(0), 'batch bad token', 12031);
  const described = wantResult(one(batch[5].id), 'batch describeSessions');
  const ids = described && Array.isArray(described.sessions) ? described.sessions.map((s) => s.sessionId) : [];
  check(ids.length === 2 && ids.includes(session.sessionId), 'batch describeSessions: want both sessions', describe(bx));
  check(wantResult(one('b-named-✓'), 'batch authenticate (named)') === '-1', 'batch authenticate (named, wrong password): want "-1"', describe(bx));

  if (failures.length > 0) {
    for (const f of failures) {
      console.log(`FAIL ${f}`);
    }
    console.log(`jayson interop: ${failures.length} of ${checks} checks failed`);
    process.exit(1);
  }
  console.log(
    `jayson interop: ok (${checks} checks: createSession, authenticate positional, notification, ` +
      `errors -32601/12031, batch of ${batch.length} with ${batch.length - calls.length} notification -> ${replies.length} replies)`,
  );
}

main().catch((err) => {
  console.log(`FAIL ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
