#!lua flags=allow-oom
-- cancel.lua: a client or an operator cancels a task: it is never called again.
-- The task leaves the due, leased and dead sets and its claim token is revoked, so a worker
-- still calling the API for it has its answer refused as stale (and its lease renewal refused).
-- The record stays, state cancelled, for `keep` ms: while it does, its name dedups, as a dead
-- task's does. Cancelled entries older than `keep` (their records have expired) are pruned here,
-- a bounded number per call, so the cancelled set stays as small as the window it covers.
-- KEYS[1] task record   KEYS[2] due   KEYS[3] leased   KEYS[4] dead   KEYS[5] cancelled
-- KEYS[6] stats   KEYS[7] events channel   KEYS[8] the task's callback lane record
-- KEYS[9] callback lane's due set   KEYS[10] callback lane's wake channel
-- ARGV[1] task key prefix   ARGV[2] keep (ms)   ARGV[3] expired cancelled entries to prune at most
-- Returns {code, HGETALL of the record}: 1 cancelled now, 2 already cancelled, 3 done (left
-- alone), 0 no such task.
-- Memory: drains, so it runs at maxmemory: it takes a task out of every set and prunes old
-- cancelled entries; the record only changes fixed-size fields (a callback record may be handed
-- over).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, {}} end
if state == 'cancelled' then return {2, redis.call('HGETALL', KEYS[1])} end
if state == 'done' then return {3, redis.call('HGETALL', KEYS[1])} end
local now, keep = now_ms(), tonumber(ARGV[2])
local at, name = int(now), name_of(KEYS[1], ARGV[1])
for i = 2, 4 do redis.call('ZREM', KEYS[i], name) end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'token', '', 'updated', at, 'cancelled_at', at)
redis.call('HDEL', KEYS[1], 'run_at')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', int(now - keep), 'LIMIT', '0', ARGV[3])
if #expired > 0 then redis.call('ZREM', KEYS[5], unpack(expired)) end
redis.call('ZADD', KEYS[5], at, name)
redis.call('HINCRBY', KEYS[6], 'cancelled', '1')
tell(name, 'cancelled')
hand_callback(KEYS[1], name, now, KEYS[8], KEYS[9])
publish_changes(KEYS[7])
wake_callbacks(KEYS[10])
return {1, redis.call('HGETALL', KEYS[1])}
