-- enqueue_many.lua: enqueue.lua for a batch, in one round trip; existing tasks are left alone.
-- KEYS[1] due zset   KEYS[2] stats hash   KEYS[3..] task records, one per name
-- ARGV[1] result ttl (ms)   ARGV[2] delay (ms)   ARGV[3..] task names, aligned with KEYS[3..]
-- Returns one flag per task: 1 created, 0 already there.
local now = now_ms()
local created_at, run_at = int(now), int(now + tonumber(ARGV[2]))
local flags, created, due = {}, 0, {}
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    flags[i - 2] = 0
  else
    redis.call('HSET', KEYS[i], 'state', 'queued', 'created', created_at, 'updated', created_at,
      'run_at', run_at, 'ttl', ARGV[1])
    due[#due + 1] = run_at
    due[#due + 1] = ARGV[i]
    flags[i - 2] = 1
    created = created + 1
  end
end
-- One ZADD for the batch (in slices, within Lua's stack limit for unpack).
for first = 1, #due, 1000 do
  redis.call('ZADD', KEYS[1], unpack(due, first, math.min(first + 999, #due)))
end
redis.call('HINCRBY', KEYS[2], 'enqueued', int(created))
redis.call('HINCRBY', KEYS[2], 'duplicates', int(#KEYS - 2 - created))
return flags
