-- A process says it is alive; returns how many are (seen within ARGV[4] seconds), so each
-- can take its share of a limit while Redis is away, and Redis's time, so that it can tell
-- Redis when its decisions go stale.
-- KEYS[1]: the sorted set of processes by last heartbeat. ARGV: now, (unused), process id,
-- seconds a heartbeat lasts.
local now = clock()
local lasts = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], F(now), ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', F(now - lasts))
expire(KEYS[1], lasts * 2)
return {redis.call('ZCARD', KEYS[1]), F(now)}
