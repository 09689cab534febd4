-- Shared by the policy scripts: the clock, number formatting, and the state of a circuit,
-- a budget and the ledger, mirroring the pure Python functions of holysheep_core.policy
-- operation for operation (same order of float operations, so the results are identical).
--
-- ARGV[1] is the time in seconds, or '' to read Redis TIME (production: one clock for all
-- processes); the operation follows, its keys in KEYS in the order it names them.

local function clock()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- ARGV[2] on: the operation, flat, read in order (a count ahead of every list).
local at = 1
local function arg() at = at + 1 return ARGV[at] end
local function n() return tonumber(arg()) end
local function numbers(count)
  local out = {}
  for i = 1, count do out[i] = n() end
  return out
end

-- '%.17g' round-trips a double exactly (Lua's tostring keeps 14 digits only).
local function F(x) return string.format('%.17g', x) end
-- Integers (nano-USD, counts) in full: redis.call would format a number with 14 digits.
local function I(x) return string.format('%d', x) end

local function num(v, default)
  if v == false or v == nil then return default end
  return tonumber(v)
end

local function expire(key, ttl)
  if ttl and ttl > 0 then redis.call('PEXPIRE', key, math.ceil(ttl * 1000)) end
end

-- Circuits --------------------------------------------------------------------------
-- state: 0 closed, 1 open, 2 half-open (CircuitState in breaker.py)

local C_FIELDS = {'s', 'e', 'f', 'o', 'p', 'k', 'a'}

local function circuit_read(key)
  local v = redis.call('HMGET', key, 's', 'e', 'f', 'o', 'p', 'k', 'a')
  return {
    s = num(v[1], 0), e = num(v[2], 0), f = num(v[3], 0), o = num(v[4], 0.0),
    p = num(v[5], 0), k = num(v[6], 0), a = num(v[7], 0.0),
  }
end

local function circuit_same(a, b)
  for _, name in ipairs(C_FIELDS) do
    if a[name] ~= b[name] then return false end
  end
  return true
end

local function circuit_write(key, c, ttl)
  redis.call('HSET', key, 's', c.s, 'e', c.e, 'f', c.f, 'o', F(c.o), 'p', c.p, 'k', c.k,
    'a', F(c.a))
  expire(key, ttl)
end

local function circuit(s, e, f, o, p, k, a)
  return {s = s, e = e, f = f or 0, o = o or 0.0, p = p or 0, k = k or 0, a = a or 0.0}
end

-- pol: {cool_down, half_open_probes, success_threshold, probe_timeout, failure_threshold}
local function circuit_settle(pol, c, now)
  if c.s == 1 and now >= c.o + pol.cool_down then
    return circuit(2, c.e + 1, c.f, c.o)
  end
  if c.s == 2 and c.p > 0 and now >= c.a + pol.probe_timeout then
    return circuit(c.s, c.e + 1, c.f, c.o, 0, c.k, c.a)
  end
  return c
end

-- A refusal as {state, retry_after, failures, probes}, or nil.
local function circuit_refusal(pol, c, now)
  if c.s == 1 then
    return {c.s, math.max(c.o + pol.cool_down - now, 0.0), c.f, c.p}
  end
  if c.s == 2 and c.p >= pol.half_open_probes then
    return {c.s, pol.cool_down, c.f, c.p}
  end
  return nil
end

-- Returns the new circuit and either {epoch, probe} or a refusal (with refused = true).
local function circuit_admit(pol, c, now)
  if c.s == 0 then return c, {c.e, 0}, false end
  c = circuit_settle(pol, c, now)
  local refusal = circuit_refusal(pol, c, now)
  if refusal then return c, refusal, true end
  if c.s == 2 then
    return circuit(c.s, c.e, c.f, c.o, c.p + 1, c.k, now), {c.e, 1}, false
  end
  return c, {c.e, 0}, false
end

-- outcome: 1 success, 2 failure, 0 neutral (Outcome in breaker.py)
local function circuit_record(pol, c, epoch, probe, outcome, now)
  if c.s == 0 and outcome == 1 and c.f == 0 then return c end
  c = circuit_settle(pol, c, now)
  if epoch ~= c.e then return c end
  if probe == 1 then
    if outcome == 2 then return circuit(1, c.e + 1, c.f, now) end
    local k = c.k
    if outcome == 1 then
      k = k + 1
      if k >= pol.success_threshold then return circuit(0, c.e + 1) end
    end
    return circuit(c.s, c.e, c.f, c.o, math.max(c.p - 1, 0), k, c.a)
  end
  if outcome == 1 then
    if c.f == 0 then return c end
    return circuit(c.s, c.e, 0, c.o, c.p, c.k, c.a)
  end
  if outcome == 2 then
    local f = c.f + 1
    if f >= pol.failure_threshold then return circuit(1, c.e + 1, f, now) end
    return circuit(c.s, c.e, f, c.o, c.p, c.k, c.a)
  end
  return c
end

local function circuit_reply(c)
  return {c.s, c.e, c.f, F(c.o), c.p, c.k, F(c.a)}
end

-- Keeping keys ------------------------------------------------------------------------
-- Every key expires when idle. Setting its TTL on every write would cost a Redis call each
-- time; instead a hash keeps in field 'x' the time (in ms) its TTL runs to, and the TTL is
-- set again only when a write needs it to run further, with a tenth to spare: a key lives
-- at least ttl after its last write, and is gone within 1.1 ttl of it.

-- What 'x' becomes when a key's TTL, running to x, must run to need (nil: it does).
local function due(x, need, ttl)
  if x and x >= need * 1000 then return nil end
  return math.ceil((need + ttl / 10) * 1000)
end

local function expire_at(key, x, now)
  redis.call('PEXPIRE', key, I(x - math.floor(now * 1000)))
end

-- HSET fields (a flat list) on the hash key, whose TTL runs to x, so that it lives until
-- need at least: with 'x' and a new TTL when that is further. Returns the new x, or nil.
local function hset_kept(key, fields, x, need, ttl, now)
  x = due(x, need, ttl)
  if x then
    fields[#fields + 1] = 'x'
    fields[#fields + 1] = I(x)
  end
  redis.call('HSET', key, unpack(fields))
  if x then expire_at(key, x, now) end
  return x
end

-- Budgets -----------------------------------------------------------------------------
-- A budget is a hash {spent, held, x, n, h:<call>: its hold} of integer nano-USD, and a
-- sorted set of the holds' expiry times with a member '~' at +inf that keeps it from
-- emptying (an empty set is deleted, and made again without a TTL). A hold still there at
-- its expiry counts as spent: its process is gone, and the server may have billed the call
-- it was sending. 'n' is a time no later than the earliest hold's expiry (absent: no hold),
-- so that the set is searched only once that time has come; a settled hold leaves 'n'
-- early, and the search that then finds nothing moves it on.

local HOLD = 'h:'

local function budget_expire_holds(bkey, zkey, now)
  local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', F(now))
  if #expired > 0 then
    local total = 0
    for i = 1, #expired, 1000 do -- unpack takes a bounded number of values
      local fields = {}
      for j = i, math.min(i + 999, #expired) do fields[#fields + 1] = HOLD .. expired[j] end
      for _, amount in ipairs(redis.call('HMGET', bkey, unpack(fields))) do
        total = total + (tonumber(amount) or 0)
      end
      redis.call('HDEL', bkey, unpack(fields))
    end
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', F(now))
    redis.call('HINCRBY', bkey, 'spent', I(total))
    redis.call('HINCRBY', bkey, 'held', I(-total))
  end
  local first = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES') -- '~' last: +inf
  if first[1] and first[1] ~= '~' then
    redis.call('HSET', bkey, 'n', first[2]) -- the hash is there: 'n' was
  else
    redis.call('HDEL', bkey, 'n')
  end
end

-- The budget's {spent, held, x, the call's hold, n}, holds past their expiry spent first.
local function budget_read(bkey, zkey, call, now)
  local v = redis.call('HMGET', bkey, 'spent', 'held', 'x', HOLD .. call, 'n')
  if v[5] and now >= tonumber(v[5]) then
    budget_expire_holds(bkey, zkey, now)
    v = redis.call('HMGET', bkey, 'spent', 'held', 'x', HOLD .. call, 'n')
  end
  return v
end

-- HSET fields on the budget's hash, which then lives budget_ttl at least, and its holds'
-- set as long.
local function budget_write(bkey, zkey, fields, x, ttl, now)
  x = hset_kept(bkey, fields, x, now + ttl, ttl, now)
  if x then
    redis.call('ZADD', zkey, '+inf', '~')
    expire_at(zkey, x, now)
  end
end

-- Ledger -------------------------------------------------------------------------------

local LEDGER_FIELDS = {'requests', 'input_tokens', 'output_tokens', 'cached_tokens',
  'reasoning_tokens', 'cost_nano', 'unpriced_requests'}

local function ledger_add(key, models_key, model, counts, ttl, now)
  for i, name in ipairs(LEDGER_FIELDS) do
    local n = counts[i]
    if n and n ~= 0 then redis.call('HINCRBY', key, name, I(n)) end
  end
  local x = due(num(redis.call('HGET', key, 'x'), nil), now + ttl, ttl)
  if x then -- the set of models lives as long as the longest-lived model's ledger
    redis.call('HSET', key, 'x', I(x))
    expire_at(key, x, now)
    redis.call('SADD', models_key, model)
    expire_at(models_key, x, now)
  end
end

-- Buckets ------------------------------------------------------------------------------
-- A bucket is a hash {l: level, t: at, f: factor, g: factor_at, x}; a spec is
-- {kind (0 requests, 1 tokens), rate, capacity}; tuning is {backoff, min_rate_factor,
-- recovery} (ratelimit.py: Bucket, BucketSpec, LimiterTuning and the functions named so).

local function bucket_read(key)
  local v = redis.call('HMGET', key, 'l', 't', 'f', 'g', 'x')
  if not v[1] then return nil end
  return {l = tonumber(v[1]), t = tonumber(v[2]), f = tonumber(v[3]), g = tonumber(v[4]),
    x = num(v[5], nil)}
end

local function bucket(l, t, f, g) return {l = l, t = t, f = f or 1.0, g = g or 0.0} end

local function rate_factor(tun, b, now)
  if b.f >= 1.0 then return 1.0 end
  if tun[3] <= 0 then return 1.0 end
  return math.min(1.0, b.f + (1.0 - b.f) * math.max(now - b.g, 0.0) / tun[3])
end

local function refill(tun, spec, b, now)
  if b == nil then return bucket(spec[3], now) end
  local factor = rate_factor(tun, b, now)
  local level = math.min(spec[3], b.l + math.max(now - b.t, 0.0) * spec[2] * factor)
  if factor >= 1.0 and b.f < 1.0 then return bucket(level, math.max(now, b.t)) end
  return bucket(level, math.max(now, b.t), b.f, b.g)
end

local function give_back(tun, spec, b, amount, now)
  if b ~= nil and b.f >= 1.0 and now > b.t then
    local level = math.min(spec[3], b.l + (now - b.t) * spec[2])
    return bucket(math.min(spec[3], level + amount), now, b.f, b.g)
  end
  b = refill(tun, spec, b, now)
  return bucket(math.min(spec[3], b.l + amount), b.t, b.f, b.g)
end

-- reset: seconds, 0 for none (both falsy in the Python reference)
local function clamp(tun, spec, b, remaining, reset, now)
  b = refill(tun, spec, b, now)
  local level = math.min(b.l, remaining)
  if remaining <= 0 and reset ~= 0 then
    level = math.min(level, -reset * spec[2] * rate_factor(tun, b, now))
  end
  return bucket(level, b.t, b.f, b.g)
end

-- retry_after: seconds, 0 for none
local function penalise(tun, spec, b, retry_after, now)
  b = refill(tun, spec, b, now)
  local factor = math.max(tun[2], rate_factor(tun, b, now) * tun[1])
  local level = b.l
  if retry_after ~= 0 then level = math.min(level, -retry_after * spec[2] * factor) end
  return bucket(level, b.t, factor, now)
end

-- When b can pay amount (operations.py: _earliest): b holds its level at b.t, after every
-- charge so far, turns still to come included; more than the capacity waits until the
-- refill since the last turn covers it.
local function earliest(tun, spec, b, amount, now)
  b = refill(tun, spec, b, now)
  if b.l >= amount and b.t <= now then return now end
  return math.max(now, b.t + (amount - b.l) / (spec[2] * rate_factor(tun, b, b.t)))
end

-- b after paying amount at turn (operations.py: _charge); while a call larger than the
-- capacity waits, the refill it waits for is its own.
local function charge(tun, spec, b, amount, turn)
  if amount > spec[3] and turn > b.t then
    local rate = spec[2] * rate_factor(tun, b, b.t)
    local level = math.min(amount, b.l + (turn - b.t) * rate)
    return bucket(level - amount, turn, b.f, b.g)
  end
  b = refill(tun, spec, b, turn)
  return bucket(b.l - amount, b.t, b.f, b.g)
end

-- b over old (as read: nil when the key was absent); only what changed is written.
local function bucket_write(key, b, old, spec, tun, ttl, now)
  local fields = {'l', F(b.l), 't', F(b.t)}
  if old == nil or b.f ~= old.f or b.g ~= old.g then
    fields[5], fields[6], fields[7], fields[8] = 'f', F(b.f), 'g', F(b.g)
  end
  -- Idle long enough to be full again (debt paid at the slowest rate, the back-off
  -- recovered) it is the same as absent, which starts full.
  local slowest = spec[2] * math.max(tun[2], math.min(b.f, 1.0))
  local idle = math.max(b.t - now, 0) + (spec[3] - b.l) / slowest + tun[3]
  hset_kept(key, fields, old and old.x, now + math.max(ttl, idle + 1), ttl, now)
end
