/**
 * The Lua scripts of the shared registry (Redis). Every check-and-set of a lease is one script, run
 * atomically by Redis (EVALSHA through ioredis `defineCommand`): never GET-then-SET from the edge.
 * Times are Redis's own clock (`TIME`), so edges with skewed clocks agree on what has expired.
 *
 * One hash per tunnel key (`jetty:lease:demo`, `jetty:lease:tcp:20005`):
 *   owner          the token hash the key is held for ('' on open edges)
 *   grace          ms (Redis clock) until which an empty key is held for its owner's return
 *   e:<edgeId>     `<epoch>:<expiresMs>`: one edge's lease (several when a pool spans edges)
 *   s:<sessionId>  `<edgeId>:<sha256 of its resume secret>`: who may take the session over
 * plus `jetty:epoch`, the global fencing counter, and `jetty:edge:<edgeId>` → its peer URL.
 */

/** Shared prelude: `now` in ms and a parser of `<a>:<b>` values. */
const PRELUDE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function split(v)
  local i = string.find(v, ':', 1, true)
  return string.sub(v, 1, i - 1), string.sub(v, i + 1)
end
local function holders(key)
  local flat = redis.call('HGETALL', key)
  local h, s, owner, grace = {}, {}, nil, nil
  for i = 1, #flat, 2 do
    local f, v = flat[i], flat[i + 1]
    local kind = string.sub(f, 1, 2)
    if f == 'owner' then owner = v
    elseif f == 'grace' then grace = tonumber(v)
    elseif kind == 'e:' then
      local ep, exp = split(v)
      if tonumber(exp) > now then h[string.sub(f, 3)] = tonumber(ep) end
    elseif kind == 's:' then
      local edge, hash = split(v)
      s[string.sub(f, 3)] = { edge, hash }
    end
  end
  return h, s, owner, grace
end
`;

/**
 * claim(KEYS: lease, epoch counter; ARGV: edgeId, owner, sessionId, secretHash, resumeId, resumeHash,
 * ttlMs, minEpoch) → {1, epoch, fencedEdgeId} or {0} (refused). The rules of MemoryRegistry.claim,
 * cluster-wide: a live key of another owner (or of the open owner '') is refused; the same non-empty
 * owner joins the pool; an empty key in grace is held for its owner; the same agent (its session id,
 * and on an open edge its resume secret) takes its session over from any edge: that edge's lease of the
 * key is deleted (fenced) and this edge's gets a new epoch. `minEpoch` keeps epochs increasing even
 * after Redis lost its data (the counter is raised to it).
 */
export const CLAIM_LUA = `${PRELUDE}
local key = KEYS[1]
local edge, owner, sid, shash, resume, rhash = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ttl, minEpoch = tonumber(ARGV[7]), tonumber(ARGV[8])
local h, s, stored, grace = holders(key)
local live = 0
for _ in pairs(h) do live = live + 1 end
for id, rec in pairs(s) do
  if h[rec[1]] == nil then redis.call('HDEL', key, 's:' .. id); s[id] = nil end
end
local same = stored == owner
local replacing = nil
if resume ~= '' and s[resume] and same and (owner ~= '' or (rhash ~= '' and s[resume][2] == rhash)) then replacing = resume end
local joinable
if stored == nil then joinable = true
elseif live == 0 then joinable = same or grace == nil or grace <= now
else joinable = same and owner ~= '' end
if not joinable and not replacing then return {0} end
local fenced = ''
if replacing then
  local old = s[replacing][1]
  redis.call('HDEL', key, 's:' .. replacing)
  if old ~= edge then
    redis.call('HDEL', key, 'e:' .. old)
    for id, rec in pairs(s) do
      if rec[1] == old then redis.call('HDEL', key, 's:' .. id) end
    end
    h[old] = nil
    fenced = old
  end
end
if live == 0 then
  -- Nobody holds it: what an expired holder left behind goes.
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'e:' or string.sub(f, 1, 2) == 's:' then redis.call('HDEL', key, f) end
  end
end
local epoch = h[edge]
if epoch == nil then
  epoch = redis.call('INCR', KEYS[2])
  if epoch <= minEpoch then
    epoch = minEpoch + 1
    redis.call('SET', KEYS[2], epoch)
  end
end
redis.call('HSET', key, 'owner', owner, 'e:' .. edge, epoch .. ':' .. (now + ttl), 's:' .. sid, edge .. ':' .. shash)
redis.call('HDEL', key, 'grace')
if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
return {1, epoch, fenced}
`;

/**
 * release(KEYS: lease; ARGV: edgeId, sessionId, epoch, last ('1' when the edge has no other session of
 * the key), graceMs) → 1, or 0 when this edge's lease is gone or has another epoch (a stale holder can
 * release nothing). The last holder leaving with graceMs > 0 leaves the key held for its owner.
 */
export const RELEASE_LUA = `${PRELUDE}
local key = KEYS[1]
local edge, sid, epoch, last, grace = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local v = redis.call('HGET', key, 'e:' .. edge)
if not v then return 0 end
local ep, _ = split(v)
if tonumber(ep) ~= epoch then return 0 end
redis.call('HDEL', key, 's:' .. sid)
if last ~= '1' then return 1 end
redis.call('HDEL', key, 'e:' .. edge)
for id, rec in pairs(({holders(key)})[2]) do
  if rec[1] == edge then redis.call('HDEL', key, 's:' .. id) end
end
local h = holders(key)
if next(h) ~= nil then return 1 end
if grace > 0 then
  redis.call('HSET', key, 'grace', now + grace)
  redis.call('PEXPIRE', key, grace)
else
  redis.call('DEL', key)
end
return 1
`;

/**
 * renew(KEYS: edge record, lease keys…; ARGV: edgeId, ttlMs, peerUrl, epochs…) → one status per lease
 * key: 1 renewed, 0 gone (expired or deleted, nobody else holds it: claim it again), -1 fenced (another
 * edge holds it now: the newer epoch wins). Also refreshes this edge's record (its peer URL).
 */
export const RENEW_LUA = `${PRELUDE}
local edge, ttl = ARGV[1], tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local epoch = tonumber(ARGV[i + 2])
  local v = redis.call('HGET', key, 'e:' .. edge)
  local ok = false
  if v then
    local ep, exp = split(v)
    ok = tonumber(ep) == epoch and tonumber(exp) > now
  end
  if ok then
    redis.call('HSET', key, 'e:' .. edge, epoch .. ':' .. (now + ttl))
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
    out[i - 1] = 1
  else
    local h = holders(key)
    h[edge] = nil
    out[i - 1] = (next(h) ~= nil) and -1 or 0
  end
end
return out
`;

/**
 * locate(KEYS: lease) → {graceLeftMs, edgeId, epoch, edgeId, epoch…}: the live leases of the key and,
 * when nobody holds it, how long it is still held for its owner's return.
 */
export const LOCATE_LUA = `${PRELUDE}
local h, _, _, grace = holders(KEYS[1])
local out = { 0 }
for edge, epoch in pairs(h) do
  table.insert(out, edge)
  table.insert(out, epoch)
end
if #out == 1 and grace ~= nil and grace > now then out[1] = grace - now end
return out
`;
