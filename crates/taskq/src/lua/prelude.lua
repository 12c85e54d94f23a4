-- prelude.lua: prepended to every script (see scripts.rs), so the helpers below are written once.
-- Every key a script touches is declared in KEYS (Redis Cluster requires it to route and to
-- migrate slots safely): scripts that work on tasks they cannot name in advance (claim, reap)
-- receive candidate records read by the client just before, and re-check each one here.
-- Task names come one way: a script that works on tasks receives their records as KEYS and the
-- queue's task key prefix as an argument, and reads each name off its key (`name_of`); no name
-- travels twice.
-- A task's record is the HASH `<prefix><name>`; its fields:
--   state     queued | running | processing | done | dead | cancelled
--   token     the current owner's claim token ('' or absent when nobody owns it)
--   attempts  failed attempts since the last successful poll (errors and expired leases)
--   polls     "processing" answers received
--   claims    times the task was handed to a worker
--   throttled answers that asked the caller to slow down (429, 503): no attempt used
--             (these four counters are absent until they first count: absent means 0)
--   remote_id the id the API gave the task's job at its submit (queues whose calls start with one)
--   submit_token the claim token of the task's first submit: its idempotency key, fixed until a retry
--   data      JSON text: the latest partial data, or the final result once done
--   payload   JSON text the task was submitted with (optional)
--   error     the last error, kept for the record
--   created, updated, run_at, done_at, died_at, cancelled_at   server time in ms
--   ttl       how long (ms) a done record is kept, chosen by whoever enqueued the task
--   hurried   '1' when a provider's webhook came in while the task's call was on its way
--   kept      JSON object: the values of the submit's answer the profile's later calls name
--   hook      the latest body a provider POSTed to the task's hook URL (JSON text), until it ends
--   callback_url  where the task's view is POSTed when it ends (see hand_callback)

-- Events. Whoever waits on a task (a long-polling client, an event stream) is told of every change
-- of its state and of every new partial data: each script that changes tasks gathers the changes
-- (`tell`) and publishes them once, at its end, on the queue's events channel (`publish_changes`):
-- one message per call, lines of '<state> <name>' (a name holds no control character, a state no
-- space). `PUBLISH` is the first line of every script (scripts.rs): 'SPUBLISH' on a Redis
-- Cluster, where the channel, under the queue's hash tag, belongs to the queue's shard.
local changes = {}
local function tell(name, state)
  changes[#changes + 1] = state .. ' ' .. name
end
local function publish_changes(k_events)
  if #changes > 0 then
    redis.call(PUBLISH, k_events, table.concat(changes, '\n'))
  end
end

-- An integer as a Redis argument. Redis 7.0 turns a Lua number argument into text with
-- printf("%.17g"), which profiles showed taking a tenth of Redis' time in these scripts; '%d'
-- costs a fraction of that. Every number a script hands to redis.call goes through here (or is a
-- string literal).
local function int(n)
  return string.format('%d', n)
end

-- Callbacks. A task enqueued with a callback_url hands its callback, when it ends (done, dead,
-- cancelled), to the queue's callback lane, in the step that ends it: a delivery record named
-- like the task (`lane_record`, declared in KEYS by the caller), due at once, whose payload is
-- {"url": ...}, kept as long as the task's result. The lane is a queue like any other: claimed,
-- retried with backoff and buried by these same scripts. A task without a callback_url, or a
-- caller that passes no lane record (it knows the task has none), hands nothing.
local callbacks_due = false
local function hand_callback(key, name, now, lane_record, k_lane_due)
  if not lane_record then return end
  local f = redis.call('HMGET', key, 'callback_url', 'ttl')
  if not f[1] then return end
  local at = int(now)
  redis.call('DEL', lane_record)
  redis.call('HSET', lane_record, 'state', 'queued', 'created', at, 'updated', at, 'run_at', at,
    'ttl', f[2] or '3600000', 'payload', cjson.encode({url = f[1]}))
  redis.call('ZADD', k_lane_due, at, name)
  callbacks_due = true
end
-- Wakes the lane's idle deliverers when a callback was handed to it.
local function wake_callbacks(k_lane_wake)
  if callbacks_due then redis.call(PUBLISH, k_lane_wake, '') end
end

-- The name of the task whose record is `key`.
local function name_of(key, prefix)
  return string.sub(key, #prefix + 1)
end

-- Server time in milliseconds: clients never send timestamps, so hosts cannot disagree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The state a task waits in for its next call: processing once the API holds a job for it
-- (polled, or submitted).
local function waiting_state(key)
  local f = redis.call('HMGET', key, 'polls', 'remote_id')
  if tonumber(f[1] or '0') > 0 or f[2] then
    return 'processing'
  end
  return 'queued'
end

-- Checks that `token` still owns the task. Returns 'own' when the caller may act, 'replay' when the
-- caller's own earlier call already acted (a retried script after a dropped reply), 'stale' when the
-- lease was lost to the reaper or to another worker (counted in stats).
local function ownership(key, token, k_stats)
  local cur = redis.call('HMGET', key, 'token', 'state')
  if cur[1] ~= token then
    redis.call('HINCRBY', k_stats, 'stale', '1')
    return 'stale'
  end
  if cur[2] ~= 'running' then
    return 'replay'
  end
  return 'own'
end

-- Moves a task to the dead set with a reason, and hands its callback over (see hand_callback).
-- Dead records expire after dead_ttl_ms (0 = never).
local function bury(key, name, now, reason, k_dead, k_stats, dead_ttl_ms, lane_record, k_lane_due)
  local at = int(now)
  redis.call('HSET', key, 'state', 'dead', 'error', reason, 'updated', at, 'died_at', at)
  redis.call('HDEL', key, 'hook')
  redis.call('ZADD', k_dead, at, name)
  redis.call('HINCRBY', k_stats, 'dead', '1')
  tell(name, 'dead')
  hand_callback(key, name, now, lane_record, k_lane_due)
  if dead_ttl_ms > 0 then
    redis.call('PEXPIRE', key, int(dead_ttl_ms))
  end
end

-- Puts a task back in the due set at `run_at`, in `state` (default: the state it waits in, read
-- from its record; a caller that knows it passes it and saves the read).
local function schedule(key, name, run_at, now, k_due, state)
  local at = int(run_at)
  state = state or waiting_state(key)
  redis.call('HSET', key, 'state', state, 'run_at', at, 'updated', int(now))
  redis.call('ZADD', k_due, at, name)
  tell(name, state)
end

-- Takes back the lease of `name` (record `key`) if it expired before `now`: the token is revoked
-- (a late answer from the old owner is refused as stale) and the expiry counts as a failed
-- attempt. Returns 1 when it did.
local function reap_if_expired(key, name, k_leased, k_due, k_dead, k_stats, now, max_attempts,
    dead_ttl_ms, lane_record, k_lane_due)
  local deadline = redis.call('ZSCORE', k_leased, name)
  if not deadline or tonumber(deadline) > now then
    return 0
  end
  redis.call('ZREM', k_leased, name)
  if redis.call('EXISTS', key) == 0 then
    return 0
  end
  local attempts = redis.call('HINCRBY', key, 'attempts', '1')
  redis.call('HSET', key, 'token', '')
  redis.call('HINCRBY', k_stats, 'reaped', '1')
  local reason = 'lease expired: the consumer holding the task stopped answering'
  if attempts >= max_attempts then
    bury(key, name, now, reason, k_dead, k_stats, dead_ttl_ms, lane_record, k_lane_due)
  else
    redis.call('HSET', key, 'error', reason)
    schedule(key, name, now, now, k_due)
  end
  return 1
end

-- Brings a dead task back: due at once with a fresh attempt budget, and a fresh job at the API
-- (its remote id and submit token are dropped, so a queue that submits submits anew, under a new
-- idempotency key). Returns false when the task is not dead. Shared by retry.lua (one task) and
-- retry_all.lua (the dead set, in batches).
local function revive(key, name, now, k_dead, k_due, k_stats)
  if redis.call('HGET', key, 'state') ~= 'dead' then return false end
  redis.call('ZREM', k_dead, name)
  redis.call('PERSIST', key)
  redis.call('HSET', key, 'attempts', '0')
  redis.call('HDEL', key, 'died_at', 'remote_id', 'submit_token')
  schedule(key, name, now, now, k_due)
  redis.call('HINCRBY', k_stats, 'revived', '1')
  return true
end

-- Memory. Admission control starts from a reading of Redis' memory kept in a small hash (the
-- queue's `memory` key: used, max, at = when read, written = bytes the enqueues added since),
-- refreshed by server.lua and by enqueue.lua itself. A field of INFO's text.
local function info_field(text, name)
  return string.match(text, '\r\n' .. name .. ':([^\r]*)') or string.match(text, '^' .. name .. ':([^\r]*)')
end
-- Reads used_memory and maxmemory (0: none) now and stores them as the latest reading, with
-- nothing written since. Returns used, max, and INFO's memory section.
local function read_memory(k_memory, now)
  local info = redis.call('INFO', 'memory')
  local used = tonumber(info_field(info, 'used_memory')) or 0
  local max = tonumber(info_field(info, 'maxmemory')) or 0
  redis.call('HSET', k_memory, 'used', int(used), 'max', int(max), 'at', int(now), 'written', '0')
  return used, max, info
end
