-- fail.lua: the call failed: retry after a delay, or bury the task at the attempt limit or when
-- the failure is permanent.
-- KEYS[1] task record   KEYS[2] leased   KEYS[3] due   KEYS[4] dead   KEYS[5] stats
-- ARGV[1] task name   ARGV[2] claim token   ARGV[3] error   ARGV[4] retry delay (ms)
-- ARGV[5] permanent (1|0)   ARGV[6] max attempts   ARGV[7] dead record ttl (ms)
-- Returns 1 rescheduled, 2 dead, 0 stale token.
local own = ownership(KEYS[1], ARGV[2], KEYS[5])
if own == 'stale' then return 0 end
if own == 'replay' then return 1 end
local now = now_ms()
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[5] == '1' or attempts >= tonumber(ARGV[6]) then
  bury(KEYS[1], ARGV[1], now, ARGV[3], KEYS[4], KEYS[5], tonumber(ARGV[7]))
  return 2
end
redis.call('HSET', KEYS[1], 'error', ARGV[3])
schedule(KEYS[1], ARGV[1], now + tonumber(ARGV[4]), now, KEYS[3])
redis.call('HINCRBY', KEYS[5], 'retried', 1)
return 1
