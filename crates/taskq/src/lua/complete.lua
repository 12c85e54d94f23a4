-- complete.lua: store the final result; the task leaves the queue and its record expires after its ttl.
-- KEYS[1] task record   KEYS[2] leased   KEYS[3] stats
-- ARGV[1] task name   ARGV[2] claim token   ARGV[3] final data (JSON text)
-- Returns 1 done (or already done by this token), 0 stale token.
local own = ownership(KEYS[1], ARGV[2], KEYS[3])
if own == 'stale' then return 0 end
if own == 'replay' then return 1 end
local now = now_ms()
redis.call('HSET', KEYS[1], 'state', 'done', 'data', ARGV[3], 'updated', now, 'done_at', now)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(redis.call('HGET', KEYS[1], 'ttl') or '3600000'))
redis.call('HINCRBY', KEYS[3], 'done', 1)
return 1
