-- finish.lua: record the outcomes of calls (one or many) in one round trip: "done" stores the
-- result, "processing" the partial data and the next poll (past the poll deadline: dead),
-- "submitted" the same plus the remote id the API gave the task's job, "throttled" only the next
-- call (no attempt used; past the poll deadline: dead), "failed" a retry after the given delay
-- (at the attempt limit, or when permanent: dead).
-- Batching matters: the per-call cost of a script dominates the work inside it.
-- KEYS[1] leased   KEYS[2] due   KEYS[3] dead   KEYS[4] stats   KEYS[5] events channel
-- KEYS[6] callback lane's due set   KEYS[7] callback lane's wake channel
-- KEYS[7+i] record of task i (i = 1..N), then the callback lane records of the tasks that have a
-- callback (the worker knows which from their claim)
-- ARGV[1] task key prefix   ARGV[2] poll deadline, ms after creation (0 = none)
-- ARGV[3] max attempts   ARGV[4] dead record ttl (ms)
-- ARGV[5] N, the number of tasks
-- then seven ARGV per task i, from ARGV[7*i-1]: kind (done|processing|submitted|throttled|failed),
-- claim token, data (JSON text) or error, delay (ms), permanent (1|0, for failed), remote id (for
-- submitted; '' otherwise), the KEYS index of its callback lane record (0: none)
-- Returns one code per task: 1 recorded (or already recorded by this token), 2 recorded and the
-- task is now dead, 0 stale token (the lease was lost; counted).
local prefix, max_poll = ARGV[1], tonumber(ARGV[2])
local max_attempts, dead_ttl, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local codes, finished = {}, {}
local done, snoozed, retried, throttled = 0, 0, 0, 0
-- Past the poll deadline, a task waiting on the API (processing, throttled) is dead.
local function overdue(key)
  return max_poll > 0 and now - tonumber(redis.call('HGET', key, 'created')) >= max_poll
end
for i = 8, 7 + n do
  local key, name = KEYS[i], name_of(KEYS[i], prefix)
  local a = 7 * (i - 7) - 1
  local kind, token, text, delay = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local permanent, remote_id = ARGV[a + 4] == '1', ARGV[a + 5]
  local lane = KEYS[tonumber(ARGV[a + 6])]
  local own = ownership(key, token, KEYS[4])
  local code = 1
  if own == 'stale' then
    code = 0
  elseif own == 'own' then
    finished[#finished + 1] = name
    if kind == 'done' then
      local at = int(now)
      redis.call('HSET', key, 'state', 'done', 'data', text, 'updated', at, 'done_at', at)
      redis.call('PEXPIRE', key, redis.call('HGET', key, 'ttl') or '3600000')
      tell(name, 'done')
      hand_callback(key, name, now, lane, KEYS[6])
      done = done + 1
    elseif kind == 'processing' or kind == 'submitted' then
      if kind == 'submitted' then
        redis.call('HSET', key, 'data', text, 'attempts', '0', 'remote_id', remote_id)
      else
        redis.call('HINCRBY', key, 'polls', '1')
        redis.call('HSET', key, 'data', text, 'attempts', '0')
      end
      if overdue(key) then
        local polls = redis.call('HGET', key, 'polls') or '0'
        local reason = 'poll deadline passed: still processing after ' .. polls .. ' polls'
        if kind == 'submitted' then
          reason = 'poll deadline passed: the job was only just submitted'
        end
        bury(key, name, now, reason, KEYS[3], KEYS[4], dead_ttl, lane, KEYS[6])
        code = 2
      else
        -- A provider's webhook came in during this call (hurry.lua): its news is newer than
        -- this answer, so call again at once.
        if redis.call('HDEL', key, 'hurried') == 1 then delay = 0 end
        schedule(key, name, now + delay, now, KEYS[2], 'processing')
        snoozed = snoozed + 1
      end
    elseif kind == 'throttled' then
      local times = redis.call('HINCRBY', key, 'throttled', '1')
      if overdue(key) then
        bury(key, name, now, 'poll deadline passed: throttled ' .. times .. ' times, last: ' .. text,
          KEYS[3], KEYS[4], dead_ttl, lane, KEYS[6])
        code = 2
      else
        redis.call('HSET', key, 'error', text)
        schedule(key, name, now + delay, now, KEYS[2])
        throttled = throttled + 1
      end
    else
      local attempts = redis.call('HINCRBY', key, 'attempts', '1')
      if permanent or attempts >= max_attempts then
        bury(key, name, now, text, KEYS[3], KEYS[4], dead_ttl, lane, KEYS[6])
        code = 2
      else
        redis.call('HSET', key, 'error', text)
        schedule(key, name, now + delay, now, KEYS[2])
        retried = retried + 1
      end
    end
  end
  codes[#codes + 1] = code
end
for first = 1, #finished, 500 do
  redis.call('ZREM', KEYS[1], unpack(finished, first, math.min(first + 499, #finished)))
end
if done > 0 then redis.call('HINCRBY', KEYS[4], 'done', int(done)) end
if snoozed > 0 then redis.call('HINCRBY', KEYS[4], 'snoozed', int(snoozed)) end
if retried > 0 then redis.call('HINCRBY', KEYS[4], 'retried', int(retried)) end
if throttled > 0 then redis.call('HINCRBY', KEYS[4], 'throttled', int(throttled)) end
publish_changes(KEYS[5])
wake_callbacks(KEYS[7])
return codes
