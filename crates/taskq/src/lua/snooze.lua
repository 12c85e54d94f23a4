-- snooze.lua: the API answered "processing": keep the partial data and poll again later.
-- Not a failed attempt (the attempt counter restarts); past the poll deadline the task dies instead.
-- KEYS[1] task record   KEYS[2] leased   KEYS[3] due   KEYS[4] dead   KEYS[5] stats
-- ARGV[1] task name   ARGV[2] claim token   ARGV[3] partial data (JSON text)   ARGV[4] delay (ms)
-- ARGV[5] poll deadline, ms after creation (0 = none)   ARGV[6] dead record ttl (ms)
-- Returns 1 rescheduled, 2 dead (deadline passed), 0 stale token.
local own = ownership(KEYS[1], ARGV[2], KEYS[5])
if own == 'stale' then return 0 end
if own == 'replay' then return 1 end
local now = now_ms()
local polls = redis.call('HINCRBY', KEYS[1], 'polls', 1)
redis.call('HSET', KEYS[1], 'data', ARGV[3], 'attempts', 0)
redis.call('ZREM', KEYS[2], ARGV[1])
local deadline = tonumber(ARGV[5])
if deadline > 0 and now - tonumber(redis.call('HGET', KEYS[1], 'created')) >= deadline then
  bury(KEYS[1], ARGV[1], now, 'poll deadline passed: still processing after ' .. polls .. ' polls',
    KEYS[4], KEYS[5], tonumber(ARGV[6]))
  return 2
end
schedule(KEYS[1], ARGV[1], now + tonumber(ARGV[4]), now, KEYS[3])
redis.call('HINCRBY', KEYS[5], 'snoozed', 1)
return 1
