-- BeforeAttempt (operations.py: before_attempt): budget holds, the breaker's pass and the
-- limiter's turn, all or nothing, in one round trip.
-- KEYS: per hold its budget, holds and expiries keys; the circuit (with a breaker); one
-- per bucket. ARGV[2]: {call, holds = {{cap, amount}}, breaker = {failure_threshold,
-- cool_down, half_open_probes, success_threshold, probe_timeout}, buckets = {spec},
-- tokens, tuning, max_wait (absent: none), hold_ttl, ttl, budget_ttl}.

local now = clock()
local op = cjson.decode(ARGV[2])
local k = 1

-- Budgets first: a refusal changes nothing.
local holds = op.holds or {}
local taking = {}
for i, h in ipairs(holds) do
  local bkey, hkey, zkey = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  k = k + 3
  budget_expire_holds(bkey, hkey, zkey, now)
  if redis.call('HEXISTS', hkey, op.call) == 0 then
    local spent, held = budget_read(bkey)
    if spent + held + h[2] > h[1] then return {'budget', i, spent, held} end
    taking[#taking + 1] = {bkey, hkey, zkey, h[2]}
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
    states[i] = bucket_read(KEYS[k + i - 1]) or bucket(spec[3], now) -- never seen: full now
    turn = math.max(turn, earliest(tun, spec, states[i], amount, now))
  end
  wait = turn - now
  if wait > 0 and op.max_wait ~= nil and wait >= op.max_wait then return {'late', F(wait)} end
end

-- Granted: write it all.
for _, t in ipairs(taking) do
  redis.call('HINCRBY', t[1], 'held', I(t[4]))
  redis.call('HSET', t[2], op.call, I(t[4]))
  redis.call('ZADD', t[3], F(now + op.hold_ttl), op.call)
  budget_touch(t[1], t[2], t[3], op.budget_ttl)
end
for i, spec in ipairs(specs) do
  local amount = op.tokens
  if spec[1] == 0 then amount = 1.0 end
  bucket_write(KEYS[k + i - 1], charge(tun, spec, states[i], amount, turn), spec, tun, op.ttl, now)
end
if not pol then return {'ok', F(wait)} end
if wait > 0 then return {'ok', F(wait)} end -- no pass (it may be a probe's) held while waiting
if not circuit_same(old, new) then
  circuit_write(ckey, new, math.max(op.ttl, pol.cool_down + pol.probe_timeout))
end
return {'ok', F(wait), verdict[1], verdict[2], old.s, circuit_reply(new)}
