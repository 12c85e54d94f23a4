-- retry.lua: an operator brings a dead task back: due at once with a fresh attempt budget.
-- KEYS[1] task record   KEYS[2] dead   KEYS[3] due   KEYS[4] stats
-- ARGV[1] task name
-- Returns 1 requeued, 0 the task is not dead.
if redis.call('HGET', KEYS[1], 'state') ~= 'dead' then return 0 end
local now = now_ms()
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[1], 'attempts', 0)
redis.call('HDEL', KEYS[1], 'died_at')
schedule(KEYS[1], ARGV[1], now, now, KEYS[3])
redis.call('HINCRBY', KEYS[4], 'revived', 1)
return 1
