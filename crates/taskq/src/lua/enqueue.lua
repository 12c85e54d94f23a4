-- enqueue.lua: add tasks unless one of the same name is live or has a stored result.
-- One call carries one task or many: concurrent enqueues share calls (see batcher.rs) and
-- enqueue_many sends its chunks here. Within a call tasks are added in order, so a name given
-- twice is created once (the second sees the first).
-- KEYS[1] due zset   KEYS[2] stats hash   KEYS[3] wake channel   KEYS[3+i] record of task i
-- ARGV[1] result ttl (ms)   ARGV[2] '1': answer the record of a task already there, '0': answer 0
-- ARGV[3] task key prefix   ARGV[1+3i]: payload (JSON text; '' for none) of task i
-- ARGV[2+3i]: when task i is due: '' now, '+N' N ms from now, 'N' at N ms since the epoch (server
-- time; a time already past is now)   ARGV[3+3i]: its callback URL ('' for none)
-- Returns {created, r1, r2, ...}: `created` is the server time (ms) at which the new tasks were
-- created (and are due, unless scheduled later); r_i is 1 for a task created now, else 0 or the
-- record's HGETALL (the client knows the rest of a new record: reading it back would cost Redis
-- time).
local now_n = now_ms()
local now = int(now_n)
local ttl, records, prefix = ARGV[1], ARGV[2] == '1', ARGV[3]
local replies, due, due_now = {now}, {}, false
for i = 4, #KEYS do
  local a = 3 * (i - 3) + 1
  local name, payload, when, callback = name_of(KEYS[i], prefix), ARGV[a], ARGV[a + 1], ARGV[a + 2]
  if redis.call('EXISTS', KEYS[i]) == 1 then
    replies[i - 2] = records and redis.call('HGETALL', KEYS[i]) or 0
  else
    local run_at = now
    if when ~= '' then
      if string.sub(when, 1, 1) == '+' then
        run_at = int(now_n + tonumber(string.sub(when, 2)))
      else
        run_at = int(math.max(now_n, tonumber(when)))
      end
    end
    local record = {'state', 'queued', 'created', now, 'updated', now, 'run_at', run_at, 'ttl', ttl}
    if payload ~= '' then
      record[#record + 1] = 'payload'
      record[#record + 1] = payload
    end
    if callback ~= '' then
      record[#record + 1] = 'callback_url'
      record[#record + 1] = callback
    end
    redis.call('HSET', KEYS[i], unpack(record))
    due_now = due_now or run_at == now
    due[#due + 1] = run_at
    due[#due + 1] = name
    replies[i - 2] = 1
  end
end
-- One ZADD per call (in slices, within Lua's stack limit for unpack).
for first = 1, #due, 1000 do
  redis.call('ZADD', KEYS[1], unpack(due, first, math.min(first + 999, #due)))
end
local created = #due / 2
if created > 0 then redis.call('HINCRBY', KEYS[2], 'enqueued', int(created)) end
if created < #KEYS - 3 then
  redis.call('HINCRBY', KEYS[2], 'duplicates', int(#KEYS - 3 - created))
end
-- Idle consumers claim at once rather than at their next tick when a new task is due now.
if due_now then redis.call(PUBLISH, KEYS[3], '') end
return replies
