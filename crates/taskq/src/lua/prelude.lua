-- prelude.lua: prepended to every script (see scripts.rs), so the helpers below are written once.
-- A task's record is the HASH `<prefix><name>`; its fields:
--   state     queued | running | processing | done | dead
--   token     the current owner's claim token ('' or absent when nobody owns it)
--   attempts  failed attempts since the last successful poll (errors and expired leases)
--   polls     "processing" answers received
--   claims    times the task was handed to a worker
--   data      JSON text: the latest partial data, or the final result once done
--   error     the last error, kept for the record
--   created, updated, run_at, done_at, died_at   server time in ms
--   ttl       how long (ms) a done record is kept, chosen by whoever enqueued the task

-- Server time in milliseconds: clients never send timestamps, so hosts cannot disagree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The state a task waits in for its next call: it has partial data once polled.
local function waiting_state(key)
  if tonumber(redis.call('HGET', key, 'polls') or '0') > 0 then
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
    redis.call('HINCRBY', k_stats, 'stale', 1)
    return 'stale'
  end
  if cur[2] ~= 'running' then
    return 'replay'
  end
  return 'own'
end

-- Moves a task to the dead set with a reason. Dead records expire after dead_ttl_ms (0 = never).
local function bury(key, name, now, reason, k_dead, k_stats, dead_ttl_ms)
  redis.call('HSET', key, 'state', 'dead', 'error', reason, 'updated', now, 'died_at', now)
  redis.call('ZADD', k_dead, now, name)
  redis.call('HINCRBY', k_stats, 'dead', 1)
  if dead_ttl_ms > 0 then
    redis.call('PEXPIRE', key, dead_ttl_ms)
  end
end

-- Puts a task back in the due set at `run_at`.
local function schedule(key, name, run_at, now, k_due)
  redis.call('HSET', key, 'state', waiting_state(key), 'run_at', run_at, 'updated', now)
  redis.call('ZADD', k_due, run_at, name)
end

-- Takes back at most `limit` leases that expired before `now`: the token is revoked (a late answer
-- from the old owner is refused as stale) and the expiry counts as a failed attempt.
local function reap_expired(k_leased, k_due, k_dead, k_stats, prefix, now, limit, max_attempts, dead_ttl_ms)
  local expired = redis.call('ZRANGEBYSCORE', k_leased, '-inf', now, 'LIMIT', 0, limit)
  for _, name in ipairs(expired) do
    local key = prefix .. name
    redis.call('ZREM', k_leased, name)
    if redis.call('EXISTS', key) == 1 then
      local attempts = redis.call('HINCRBY', key, 'attempts', 1)
      redis.call('HSET', key, 'token', '')
      redis.call('HINCRBY', k_stats, 'reaped', 1)
      local reason = 'lease expired: the consumer holding the task stopped answering'
      if attempts >= max_attempts then
        bury(key, name, now, reason, k_dead, k_stats, dead_ttl_ms)
      else
        redis.call('HSET', key, 'error', reason)
        schedule(key, name, now, now, k_due)
      end
    end
  end
  return #expired
end
