#!lua
-- hurry.lua: a provider's webhook says the job of a task moved: call it at once instead of at its
-- next poll. A waiting task (queued, processing) becomes due now; a running one (its call is on
-- its way, and may bring back a "processing" answer older than the webhook) is marked, so that
-- finish.lua makes it due at once instead of after the poll interval. A finished task, or none,
-- is left alone: a webhook repeated or late changes nothing. So is a task whose submit token is
-- not the one the hook was written for: the hook was for an earlier run of the name (ended,
-- purged, retried), or for none yet, and must not move this one ahead of its time.
-- The webhook's body, when given, is kept in the record (`hook`) for the task's next call: a
-- profile that reads webhooks takes its answer from it (a push-only provider has no other).
-- KEYS[1] task record   KEYS[2] due   KEYS[3] stats   KEYS[4] wake channel
-- ARGV[1] task key prefix   ARGV[2] the submit token the hook URL was written for
-- ARGV[3] the webhook's body, JSON text ('' for none)
-- Returns 1 hurried, 2 finished (done, dead, cancelled: nothing to do), 0 no such task,
-- 3 another run of the task (nothing changed).
-- Memory: grows, so Redis refuses it at maxmemory: it keeps the webhook's body. There the
-- producer runs it again in its draining form (flags=allow-oom, ARGV[3] ''), which only moves the
-- task's due time or sets a one-byte flag: the call it hurries reads the provider's answer.
local record = redis.call('HMGET', KEYS[1], 'state', 'submit_token')
local state = record[1]
if not state then return 0 end
if record[2] ~= ARGV[2] then return 3 end
if state == 'done' or state == 'dead' or state == 'cancelled' then return 2 end
redis.call('HINCRBY', KEYS[3], 'hurried', '1')
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'hook', ARGV[3]) end
if state == 'running' then
  redis.call('HSET', KEYS[1], 'hurried', '1')
  return 1
end
local now = now_ms()
local name = name_of(KEYS[1], ARGV[1])
local run_at = redis.call('ZSCORE', KEYS[2], name)
if run_at and tonumber(run_at) > now then
  redis.call('ZADD', KEYS[2], int(now), name)
  redis.call('HSET', KEYS[1], 'run_at', int(now))
end
redis.call(PUBLISH, KEYS[4], '')
return 1
