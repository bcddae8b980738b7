package redisstore

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Every change is one Lua script, which Redis runs atomically and writes to its append-only
// file as one unit: a change is either wholly applied or not at all, and the checks it makes
// (caps, last admin, preference limit, "the account exists") see the same data as its writes.
// Only changes of many sessions go in steps of purgeBatch sessions a script (DeleteSessions,
// DeleteAccounts' sessions, PurgeExpired), each step whole.
//
// Times travel as two integers, Unix seconds and nanoseconds, because Lua numbers are doubles
// and cannot hold Unix nanoseconds exactly. Index scores are expiry times in milliseconds,
// rounded up, so a score range is a superset of the sessions it may concern and the exact
// check is made on the record's own times.
//
// Scripts may not create globals, so the prelude keeps its state in the local table G.

// prelude is shared by the scripts that work on session records. MARGIN is TTLMargin in
// milliseconds.
var prelude = `
local G = {marked = {}, markedList = {}}
local MARGIN = ` + strconv.FormatInt(TTLMargin.Milliseconds(), 10) + `

local function num(x) return string.format('%.0f', x) end

-- before reports whether time (as, an) is before time (bs, bn).
local function before(as, an, bs, bn)
  return as < bs or (as == bs and an < bn)
end

local FIELDS = {'id', 'las', 'lan', 'lvs', 'lvn', 'idle', 'inact', 'lfs', 'lfn', 'perm', 'tk', 'ik', 'ux', 'ak'}

-- load returns the session record stored at rk, or nil.
local function load(rk)
  local v = redis.call('HMGET', rk, unpack(FIELDS))
  if not v[1] then return nil end
  local r = {key = rk, id = v[1], las = tonumber(v[2]), lan = tonumber(v[3]),
    lvs = tonumber(v[4]), lvn = tonumber(v[5]), idle = tonumber(v[6]), inact = tonumber(v[7]),
    perm = v[10] == '1', tk = v[11], ik = v[12], ux = v[13], ak = v[14]}
  if v[8] ~= '' then r.lfs, r.lfn = tonumber(v[8]), tonumber(v[9]) end
  return r
end

-- expiry is engine.Session.ExpiresAt: the first clock to run out, or nil for never.
local function expiry(r)
  if r.perm then return nil end
  local es, en
  local function earliest(s, n)
    if es == nil or before(s, n, es, en) then es, en = s, n end
  end
  if r.idle > 0 then earliest(r.las + r.idle, r.lan) end
  if r.inact > 0 then earliest(r.lvs + r.inact + 60, r.lvn) end
  if r.lfs then earliest(r.lfs, r.lfn) end
  return es, en
end

-- expired is engine.Session.Expired at time (s, n).
local function expired(r, s, n)
  local es, en = expiry(r)
  return es ~= nil and not before(s, n, es, en)
end

local function ms(s, n) return s * 1000 + math.ceil(n / 1000000) end

local function score(s, n)
  if s == nil then return '+inf' end
  return num(ms(s, n))
end

-- keep gives index z, a user's or an address's, the TTL of its longest-lived entry (none for
-- a permanent session), so that it does not outlive the records Redis drops at their TTL.
-- The all-sessions index has no TTL: PurgeExpired drops its entries without a record.
local function keep(z)
  if z == '' then return end
  local top = redis.call('ZREVRANGE', z, 0, 0, 'WITHSCORES')
  if #top == 0 then return end
  if top[2] == 'inf' then
    redis.call('PERSIST', z)
  else
    redis.call('PEXPIREAT', z, num(tonumber(top[2]) + MARGIN))
  end
end

-- mark notes index z, whose entries changed, for keepMarked. Every script that changes an
-- index ends with keepMarked, which gives each marked index its TTL once, however many of
-- its entries changed.
local function mark(z)
  if z == '' or G.marked[z] then return end
  G.marked[z] = true
  G.markedList[#G.markedList + 1] = z
end

local function keepMarked()
  for _, z in ipairs(G.markedList) do keep(z) end
  G.marked, G.markedList = {}, {}
end

-- place sets the record's score in its indexes (marked for keepMarked) and the TTL of its
-- keys from its times. With existing, it only updates index entries that are still there.
local function place(r, existing)
  local es, en = expiry(r)
  local sc = score(es, en)
  local zs = {r.ux, G.gx}
  if r.ak ~= '' then zs[3] = r.ak end
  for _, z in ipairs(zs) do
    if existing then redis.call('ZADD', z, 'XX', sc, r.id) else redis.call('ZADD', z, sc, r.id) end
  end
  mark(r.ux)
  mark(r.ak)
  for _, k in ipairs({r.key, r.tk, r.ik}) do
    if es == nil then redis.call('PERSIST', k) else redis.call('PEXPIREAT', k, num(ms(es, en) + MARGIN)) end
  end
end

-- remove deletes a session record and every index entry of it (marked for keepMarked).
local function remove(r)
  redis.call('DEL', r.key, r.tk, r.ik)
  redis.call('ZREM', G.gx, r.id)
  for _, z in ipairs({r.ux, r.ak}) do
    if z ~= '' then
      redis.call('ZREM', z, r.id)
      mark(z)
    end
  end
end

local function byID(id)
  local rk = redis.call('GET', G.gp .. 'i:' .. id)
  if not rk then return nil end
  return load(rk)
end

-- prune removes the sessions of index z that have expired at (s, n), and entries whose
-- record has gone (its TTL ran out), and returns how many sessions it removed.
local function prune(z, s, n)
  local removed = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', score(s, n))) do
    local r = byID(id)
    if not r then
      redis.call('ZREM', z, id)
    elseif expired(r, s, n) then
      remove(r)
      removed = removed + 1
    end
  end
  return removed
end
`

// scriptInsertSession stores a new session if its account exists, its id and token are free
// and no cap is reached by the live sessions. When a count has reached its cap, the expired
// sessions in that index are removed first.
//
// KEYS: all-sessions index, account, user's index, record, token key, id key.
// ARGV: global prefix, now s, now ns, max sessions, max per address, max per
// user, address index ("" for none), then the record fields id, j, las, lan, lvs, lvn, idle,
// inact, lfs, lfn, perm.
var scriptInsertSession = redis.NewScript(prelude + `
G.gx, G.gp = KEYS[1], ARGV[1]
local ns, nn = tonumber(ARGV[2]), tonumber(ARGV[3])
local ak = ARGV[7]
if redis.call('EXISTS', KEYS[2]) == 0 then return 'NOACCOUNT' end
if redis.call('EXISTS', KEYS[6]) == 1 then return 'DUPID' end
if redis.call('EXISTS', KEYS[5]) == 1 then return 'DUPTOKEN' end
local function full(z, cap)
  if cap <= 0 or redis.call('ZCARD', z) < cap then return false end
  prune(z, ns, nn)
  keepMarked() -- before a refusal returns
  return redis.call('ZCARD', z) >= cap
end
if full(G.gx, tonumber(ARGV[4])) then return 'LIMIT:g' end
if ak ~= '' and full(ak, tonumber(ARGV[5])) then return 'LIMIT:a' end
if full(KEYS[3], tonumber(ARGV[6])) then return 'LIMIT:u' end
redis.call('HSET', KEYS[4], 'id', ARGV[8], 'j', ARGV[9], 'las', ARGV[10], 'lan', ARGV[11],
  'lvs', ARGV[12], 'lvn', ARGV[13], 'idle', ARGV[14], 'inact', ARGV[15], 'lfs', ARGV[16],
  'lfn', ARGV[17], 'perm', ARGV[18], 'tk', KEYS[5], 'ik', KEYS[6], 'ux', KEYS[3], 'ak', ak)
redis.call('SET', KEYS[5], KEYS[4])
redis.call('SET', KEYS[6], KEYS[4])
place(load(KEYS[4]), false)
keepMarked()
return 'OK'
`)

// scriptReadSession returns the record a token key or an id key points to, as HGETALL does,
// or an empty list.
//
// KEYS: the token key or the id key.
var scriptReadSession = redis.NewScript(`
local rk = redis.call('GET', KEYS[1])
if not rk then return {} end
return redis.call('HGETALL', rk)
`)

// scriptSessionRecords returns the records (as HGETALL does) of the sessions with the given
// ids that exist.
//
// KEYS: all-sessions index (not read: it routes the script to the store's slot in Cluster
// mode, where the records are).
// ARGV: global prefix, then session ids.
var scriptSessionRecords = redis.NewScript(`
local out = {}
for i = 2, #ARGV do
  local rk = redis.call('GET', ARGV[1] .. 'i:' .. ARGV[i])
  if rk then
    local h = redis.call('HGETALL', rk)
    if #h > 0 then out[#out + 1] = h end
  end
end
return out
`)

// scriptUpdateSession replaces a session record if it is still the one the caller read
// (compare-and-set on its JSON), keeping last-use times that moved later meanwhile, and
// returns "OK" with the stored last-use times, "RETRY", "NOTFOUND" or "DUPTOKEN".
//
// KEYS: all-sessions index, record.
// ARGV: global prefix, JSON read, new JSON, las, lan, lvs, lvn, idle, inact,
// lfs, lfn, perm, token key, address index.
var scriptUpdateSession = redis.NewScript(prelude + `
G.gx, G.gp = KEYS[1], ARGV[1]
local r = load(KEYS[2])
if not r then return {'NOTFOUND'} end
if redis.call('HGET', KEYS[2], 'j') ~= ARGV[2] then return {'RETRY'} end
local tk, ak = ARGV[13], ARGV[14]
if tk ~= r.tk then
  if redis.call('EXISTS', tk) == 1 then return {'DUPTOKEN'} end
  redis.call('DEL', r.tk)
  redis.call('SET', tk, r.key)
  r.tk = tk
end
if ak ~= r.ak then
  if r.ak ~= '' then
    redis.call('ZREM', r.ak, r.id)
    mark(r.ak)
  end
  r.ak = ak
end
local as, an, vs, vn = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
if before(r.las, r.lan, as, an) then r.las, r.lan = as, an end
if before(r.lvs, r.lvn, vs, vn) then r.lvs, r.lvn = vs, vn end
r.idle, r.inact, r.perm = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[12] == '1'
r.lfs, r.lfn = nil, nil
if ARGV[10] ~= '' then r.lfs, r.lfn = tonumber(ARGV[10]), tonumber(ARGV[11]) end
redis.call('HSET', KEYS[2], 'j', ARGV[3], 'las', num(r.las), 'lan', num(r.lan), 'lvs', num(r.lvs),
  'lvn', num(r.lvn), 'idle', ARGV[8], 'inact', ARGV[9], 'lfs', ARGV[10], 'lfn', ARGV[11],
  'perm', ARGV[12], 'tk', tk, 'ak', ak)
place(r, false)
keepMarked()
return {'OK', num(r.las), num(r.lan), num(r.lvs), num(r.lvn)}
`)

// scriptTouchSessions applies runs of uses recorded by Touch (useRun) in the order given, as
// applyUses does: never moving a time back, skipping a run whose first use found the session
// expired, and moving LastAccessedAt only to the run's live time when the session's
// inactivity clock or lifetime ended before its latest use. It returns how many times it
// changed a record.
//
// KEYS: all-sessions index.
// ARGV: global prefix, then for each run: session id, first use s, ns, last use s, ns, live
// s, ns, last active use s, ns ("" "" for none).
var scriptTouchSessions = redis.NewScript(prelude + `
G.gx, G.gp = KEYS[1], ARGV[1]
local changed = 0
for i = 2, #ARGV, 9 do
  local r = byID(ARGV[i])
  if r and not expired(r, tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])) then
    local moved = false
    if ARGV[i + 7] ~= '' then
      local vs, vn = tonumber(ARGV[i + 7]), tonumber(ARGV[i + 8])
      if before(r.lvs, r.lvn, vs, vn) then r.lvs, r.lvn, moved = vs, vn, true end
    end
    local as, an = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
    local las, lan = r.las, r.lan
    r.las, r.lan = as, an -- the idle clock cannot have run out within the run
    if expired(r, as, an) then as, an = tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]) end
    r.las, r.lan = las, lan
    if before(r.las, r.lan, as, an) then r.las, r.lan, moved = as, an, true end
    if moved then
      redis.call('HSET', r.key, 'las', num(r.las), 'lan', num(r.lan), 'lvs', num(r.lvs), 'lvn', num(r.lvn))
      place(r, true)
      changed = changed + 1
    end
  end
end
keepMarked()
return changed
`)

// scriptDeleteSessions removes sessions by id, expired or not, and returns how many of them
// were live.
//
// KEYS: all-sessions index.
// ARGV: global prefix, now s, now ns, then the ids.
var scriptDeleteSessions = redis.NewScript(prelude + `
G.gx, G.gp = KEYS[1], ARGV[1]
local ns, nn = tonumber(ARGV[2]), tonumber(ARGV[3])
local live = 0
for i = 4, #ARGV do
  local r = byID(ARGV[i])
  if r then
    if not expired(r, ns, nn) then live = live + 1 end
    remove(r)
  end
end
keepMarked()
return live
`)

// scriptPurgeExpired removes up to a limit of the sessions expired at now, and returns how
// many it removed, how many index entries without a record it dropped, and how many
// candidates it looked at.
//
// KEYS: all-sessions index.
// ARGV: global prefix, now s, now ns, limit.
var scriptPurgeExpired = redis.NewScript(prelude + `
G.gx, G.gp = KEYS[1], ARGV[1]
local ns, nn = tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', G.gx, '-inf', score(ns, nn), 'LIMIT', 0, tonumber(ARGV[4]))
local removed, dropped = 0, 0
for _, id in ipairs(ids) do
  local r = byID(id)
  if not r then
    redis.call('ZREM', G.gx, id)
    dropped = dropped + 1
  elseif expired(r, ns, nn) then
    remove(r)
    removed = removed + 1
  end
end
keepMarked()
return {removed, dropped, #ids}
`)

// scriptCreateAccount stores a new account unless its key is taken ("EXISTS").
//
// KEYS: accounts index, admins set, account.
// ARGV: user key, JSON, "1" if admin.
var scriptCreateAccount = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return 'EXISTS' end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[1], 0, ARGV[1])
if ARGV[3] == '1' then redis.call('SADD', KEYS[2], ARGV[1]) end
return 'OK'
`)

// scriptUpdateAccount replaces an account if it is still the one the caller read
// (compare-and-set) and it does not take the admin role from the last admin; it returns
// "OK", "RETRY", "NOTFOUND" or "LASTADMIN".
//
// KEYS: accounts index, admins set, account.
// ARGV: user key, JSON read, new JSON, "1" if the new account is an admin.
var scriptUpdateAccount = redis.NewScript(`
local cur = redis.call('GET', KEYS[3])
if not cur then return 'NOTFOUND' end
if cur ~= ARGV[2] then return 'RETRY' end
local was = redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1
if was and ARGV[4] ~= '1' then
  if redis.call('SCARD', KEYS[2]) <= 1 then return 'LASTADMIN' end
  redis.call('SREM', KEYS[2], ARGV[1])
elseif not was and ARGV[4] == '1' then
  redis.call('SADD', KEYS[2], ARGV[1])
end
redis.call('SET', KEYS[3], ARGV[3])
return 'OK'
`)

// scriptDeleteAccounts removes the accounts that exist with their sessions and preferences,
// unless that would leave no admin while there is one; it returns {"OK", removed keys...} or
// {"LASTADMIN"}. When the accounts have more than step sessions between them it removes step
// of those sessions only, after the same check, and returns {"MORE"}: run it again.
//
// KEYS: all-sessions index, accounts index, admins set.
// ARGV: global prefix, step, then for each account (distinct): user key, account key,
// user's index, preferences key.
var scriptDeleteAccounts = redis.NewScript(prelude + `
G.gx, G.gp = KEYS[1], ARGV[1]
local step = tonumber(ARGV[2])
local victims, admins = {}, 0
for i = 3, #ARGV, 4 do
  if redis.call('EXISTS', ARGV[i + 1]) == 1 then
    victims[#victims + 1] = i
    if redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 1 then admins = admins + 1 end
  end
end
local out = {'OK'}
if #victims == 0 then return out end
local total = redis.call('SCARD', KEYS[3])
if total > 0 and admins == total then return {'LASTADMIN'} end
-- drop removes the sessions of user index z up to rank last (-1: all), and their entries
-- there, also those whose record has gone, and returns how many.
local function drop(z, last)
  local ids = redis.call('ZRANGE', z, 0, last)
  for _, id in ipairs(ids) do
    local r = byID(id)
    if r then remove(r) end
    redis.call('ZREM', z, id)
  end
  return #ids
end
local sessions = 0
for _, i in ipairs(victims) do sessions = sessions + redis.call('ZCARD', ARGV[i + 2]) end
if sessions > step then
  local left = step
  for _, i in ipairs(victims) do
    if left == 0 then break end
    left = left - drop(ARGV[i + 2], left - 1)
  end
  keepMarked()
  return {'MORE'}
end
for _, i in ipairs(victims) do
  drop(ARGV[i + 2], -1)
  redis.call('DEL', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('SREM', KEYS[3], ARGV[i])
  out[#out + 1] = ARGV[i]
end
keepMarked()
return out
`)

// scriptSetPreference stores a preference if the account exists ("NOACCOUNT") and the label
// is not one too many ("TOOMANY").
//
// KEYS: account, preferences.
// ARGV: label, value, most labels per user (0 = no limit).
var scriptSetPreference = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 'NOACCOUNT' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  local max = tonumber(ARGV[3])
  if max > 0 and redis.call('HLEN', KEYS[2]) >= max then return 'TOOMANY' end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 'OK'
`)
