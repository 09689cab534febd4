-- BeforeAttempt (operations.py: before_attempt): budget holds, the breaker's pass and the
-- limiter's turn, all or nothing, in one round trip.
-- KEYS: per hold its budget and expiries keys; the circuit (with a breaker); one
-- per bucket. ARGV[2] on: call, stale (the Redis time after which its caller no longer
-- waits for the reply; '': none), ttl, budget_ttl, hold_ttl, holds {cap, amount}, breaker
-- (1 and {failure_threshold, cool_down, half_open_probes, success_threshold,
-- probe_timeout}, or 0), buckets {spec}, and with buckets: tokens, tuning, max_wait ('':
-- none).

local now = clock()
local op = {}
op.call = arg()
op.stale = n()
-- Run after its caller gave up (it sat in a socket while Redis stalled), a decision would
-- take a turn and hold budget for a call that has gone on without Redis: it takes nothing.
if op.stale and now > op.stale then return {'stale'} end
op.ttl = n()
op.budget_ttl = n()
op.hold_ttl = n()
op.holds = {}
for i = 1, n() do op.holds[i] = numbers(2) end
if n() == 1 then op.breaker = numbers(5) end
op.buckets = {}
for i = 1, n() do op.buckets[i] = numbers(3) end
if #op.buckets > 0 then
  op.tokens = n()
  op.tuning = numbers(3)
  op.max_wait = n() -- nil: no deadline ('')
end
local k = 1

-- Budgets first: a refusal changes nothing.
local holds = op.holds or {}
local taking = {}
local budgets = {} -- by key: its held and n as they will be written (holds may share one)
for i, h in ipairs(holds) do
  local bkey, zkey = KEYS[k], KEYS[k + 1]
  k = k + 2
  local v = budget_read(bkey, zkey, op.call, now)
  if not v[4] then -- held already (this operation sent again): nothing more
    local spent, held = num(v[1], 0), num(v[2], 0)
    if spent + held + h[2] > h[1] then return {'budget', i, spent, held} end
    budgets[bkey] = budgets[bkey] or {held = held, n = num(v[5], nil)}
    taking[#taking + 1] = {bkey, zkey, h[2], num(v[3], nil), budgets[bkey]}
  end
end

local pol = op.breaker
local ckey, old, new, verdict
if pol then
  pol = {failure_threshold = pol[1], cool_down = pol[2], half_open_probes = pol[3],
    success_threshold = pol[4], probe_timeout = pol[5]}
  ckey = KEYS[k]
  k = k + 1
  old = circuit_read(ckey)
  local refused
  new, verdict, refused = circuit_admit(pol, old, now)
  if refused then return {'open', verdict[1], F(verdict[2]), verdict[3], verdict[4]} end
end

local specs = op.buckets or {}
local wait = 0.0
local turn = now
local tun = op.tuning
local states = {}
if #specs > 0 then
  for i, spec in ipairs(specs) do
    local amount = op.tokens
    if spec[1] == 0 then amount = 1.0 end
    states[i] = bucket_read(KEYS[k + i - 1])
    turn = math.max(turn, earliest(tun, spec, states[i] or bucket(spec[3], now), amount, now))
  end
  wait = turn - now
  if wait > 0 and op.max_wait ~= nil and wait >= op.max_wait then return {'late', F(wait)} end
end

-- Granted: write it all.
for _, t in ipairs(taking) do
  local b, expiry = t[5], now + op.hold_ttl
  local at = F(expiry)
  b.held = b.held + t[3]
  local fields = {'held', I(b.held), HOLD .. op.call, I(t[3])}
  if not b.n or expiry < b.n then
    b.n = expiry
    fields[5], fields[6] = 'n', at
  end
  budget_write(t[1], t[2], fields, t[4], op.budget_ttl, now)
  redis.call('ZADD', t[2], at, op.call)
end
for i, spec in ipairs(specs) do
  local amount = op.tokens
  if spec[1] == 0 then amount = 1.0 end
  local b = charge(tun, spec, states[i] or bucket(spec[3], now), amount, turn) -- never seen: full now
  bucket_write(KEYS[k + i - 1], b, states[i], spec, tun, op.ttl, now)
end
if not pol then return {'ok', F(wait)} end
if wait > 0 then return {'ok', F(wait)} end -- no pass (it may be a probe's) held while waiting
if not circuit_same(old, new) then
  circuit_write(ckey, new, math.max(op.ttl, pol.cool_down + pol.probe_timeout))
end
-- The circuit only when its state changed (a transition to report).
if old.s == new.s then return {'ok', F(wait), verdict[1], verdict[2]} end
return {'ok', F(wait), verdict[1], verdict[2], old.s, circuit_reply(new)}
