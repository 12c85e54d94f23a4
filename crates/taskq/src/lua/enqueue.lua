-- enqueue.lua: add a task unless one of that name is live or has a stored result.
-- KEYS[1] task record   KEYS[2] due zset   KEYS[3] stats hash
-- ARGV[1] task name     ARGV[2] result ttl (ms)   ARGV[3] delay before the first call (ms)
-- ARGV[4] payload (JSON text; optional)
-- Returns {0, HGETALL of the record} for a task already there, {1, created, run_at} for a new
-- one (the client knows the rest of a new record: reading it back would cost a command).
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'duplicates', '1')
  return {0, redis.call('HGETALL', KEYS[1])}
end
local now = now_ms()
local created, run_at = int(now), int(now + tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'state', 'queued', 'created', created, 'updated', created,
  'run_at', run_at, 'ttl', ARGV[2])
if ARGV[4] then redis.call('HSET', KEYS[1], 'payload', ARGV[4]) end
redis.call('ZADD', KEYS[2], run_at, ARGV[1])
redis.call('HINCRBY', KEYS[3], 'enqueued', '1')
return {1, created, run_at}
