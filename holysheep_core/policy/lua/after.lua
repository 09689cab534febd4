-- AfterAttempt (operations.py: after_attempt): the breaker's verdict, the limiter's
-- corrections, budget settlements and the ledger, in one round trip. Applied once: a
-- replay of the same operation (sent again after Redis came back) changes nothing.
-- KEYS: the sending process's done-set; the circuit (with a verdict); one per give-back,
-- server count and back-off; per settlement its budget and expiries keys; the
-- ledger's model hash and model set (with ledger counts).
-- ARGV[2] on: call, seq, done_ttl, ttl, budget_ttl, breaker (1 and its policy, the
-- admission {epoch, probe} and the outcome, or 0), tuning, give_back {spec, amount},
-- counts {spec, remaining, reset}, backoff {spec}, retry_after, settles {spent}, ledger
-- (1, the model and its counts, or 0).

local now = clock()
local op = {}
op.call = arg()
op.seq = arg()
op.done_ttl = n()
op.ttl = n()
op.budget_ttl = n()
if n() == 1 then
  op.breaker = numbers(5)
  op.admission = numbers(2)
  op.outcome = n()
end
op.tuning = numbers(3)
op.give_back = {}
for i = 1, n() do
  local spec = numbers(3)
  op.give_back[i] = {spec, n()}
end
op.counts = {}
for i = 1, n() do
  local spec = numbers(3)
  local remaining = n()
  op.counts[i] = {spec, remaining, n()}
end
op.backoff = {}
for i = 1, n() do op.backoff[i] = numbers(3) end
op.retry_after = n()
op.settles = numbers(n())
if n() == 1 then
  op.ledger = {arg()}
  for i = 1, 7 do op.ledger[i + 1] = n() end
end
-- KEYS[1]: the sending process's applied operations by sequence number, scored by time.
if redis.call('ZADD', KEYS[1], 'NX', F(now), op.seq) == 0 then return {'done'} end
-- Forgetting the old ones can wait: a few dozen stay a little longer, never fewer.
if tonumber(op.seq) % 32 == 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', F(now - op.done_ttl))
end
expire(KEYS[1], op.done_ttl)
local k = 2
local reply = {'ok'}

local pol = op.breaker
if pol and op.admission then
  pol = {failure_threshold = pol[1], cool_down = pol[2], half_open_probes = pol[3],
    success_threshold = pol[4], probe_timeout = pol[5]}
  local ckey = KEYS[k]
  k = k + 1
  local old = circuit_read(ckey)
  local new = circuit_record(pol, old, op.admission[1], op.admission[2], op.outcome, now)
  if not circuit_same(old, new) then
    circuit_write(ckey, new, math.max(op.ttl, pol.cool_down + pol.probe_timeout))
  end
  if old.s ~= new.s then reply = {'ok', old.s, circuit_reply(new)} end
end

-- A key may be changed by several parts: each sees the change before it.
local tun = op.tuning
local seen, order = {}, {}
local function value(key, spec)
  local v = seen[key]
  if v == nil then
    order[#order + 1] = key
    local b = bucket_read(key)
    v = {b = b, old = b}
    seen[key] = v
  end
  v.spec = spec
  return v
end
for _, g in ipairs(op.give_back or {}) do
  local v = value(KEYS[k], g[1])
  v.b = give_back(tun, g[1], v.b, g[2], now)
  k = k + 1
end
for _, c in ipairs(op.counts or {}) do
  local v = value(KEYS[k], c[1])
  v.b = clamp(tun, c[1], v.b, c[2], c[3], now)
  k = k + 1
end
for _, spec in ipairs(op.backoff or {}) do
  local v = value(KEYS[k], spec)
  v.b = penalise(tun, spec, v.b, op.retry_after, now)
  k = k + 1
end
for _, key in ipairs(order) do
  local v = seen[key]
  bucket_write(key, v.b, v.old, v.spec, tun, op.ttl, now)
end

for _, spent in ipairs(op.settles or {}) do
  local bkey, zkey = KEYS[k], KEYS[k + 1]
  k = k + 2
  local v = budget_read(bkey, zkey, op.call, now)
  local amount = tonumber(v[4])
  if amount then
    redis.call('HDEL', bkey, HOLD .. op.call)
    redis.call('ZREM', zkey, op.call)
    local fields = {'held', I(math.max(num(v[2], 0) - amount, 0))}
    if spent ~= 0 then fields[3], fields[4] = 'spent', I(num(v[1], 0) + spent) end
    budget_write(bkey, zkey, fields, num(v[3], nil), op.budget_ttl, now)
  end
end

if op.ledger then
  local counts = {}
  for i = 2, #op.ledger do counts[i - 1] = op.ledger[i] end
  ledger_add(KEYS[k], KEYS[k + 1], op.ledger[1], counts, op.budget_ttl, now)
end
return reply
