-- enqueue.lua: add tasks unless one of the same name is live or has a stored result.
-- One call carries one task or many: concurrent enqueues share calls (see batcher.rs) and
-- enqueue_many sends its chunks here. Within a call tasks are added in order, so a name given
-- twice is created once (the second sees the first).
-- KEYS[1] due zset   KEYS[2] stats hash   KEYS[2+i] record of task i
-- ARGV[1] result ttl (ms)   ARGV[2] '1': answer the record of a task already there, '0': answer 0
-- ARGV[3] task key prefix   ARGV[3+i]: payload (JSON text; '' for none) of task i
-- Returns {created, r1, r2, ...}: `created` is the server time (ms) at which the new tasks were
-- created (and are due); r_i is 1 for a task created now, else 0 or the record's HGETALL (the
-- client knows the rest of a new record: reading it back would cost Redis time).
local now = int(now_ms())
local ttl, records, prefix = ARGV[1], ARGV[2] == '1', ARGV[3]
local replies, due = {now}, {}
for i = 3, #KEYS do
  local name, payload = name_of(KEYS[i], prefix), ARGV[i + 1]
  if redis.call('EXISTS', KEYS[i]) == 1 then
    replies[i - 1] = records and redis.call('HGETALL', KEYS[i]) or 0
  else
    local record = {'state', 'queued', 'created', now, 'updated', now, 'run_at', now, 'ttl', ttl}
    if payload ~= '' then
      record[#record + 1] = 'payload'
      record[#record + 1] = payload
    end
    redis.call('HSET', KEYS[i], unpack(record))
    due[#due + 1] = now
    due[#due + 1] = name
    replies[i - 1] = 1
  end
end
-- One ZADD per call (in slices, within Lua's stack limit for unpack).
for first = 1, #due, 1000 do
  redis.call('ZADD', KEYS[1], unpack(due, first, math.min(first + 999, #due)))
end
local created = #due / 2
if created > 0 then redis.call('HINCRBY', KEYS[2], 'enqueued', int(created)) end
if created < #KEYS - 2 then
  redis.call('HINCRBY', KEYS[2], 'duplicates', int(#KEYS - 2 - created))
end
return replies
