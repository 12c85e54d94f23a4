#!lua
-- finish.lua: record the outcomes of calls (one or many) in one round trip: "done" stores the
-- result (and drops the last error: the task succeeded), "processing" the partial data and the
-- next poll (past the poll deadline: dead), "submitted" the same plus the remote id the API gave
-- the task's job, "waiting" only the next look (nothing was called: the task waits for a
-- provider's webhook; past the poll deadline: dead with the reason given), "throttled" only the
-- next call (no attempt used; past the poll deadline: dead),
-- "failed" a retry after the given delay (at the attempt limit, or when permanent: dead).
-- Batching matters: the per-call cost of a script dominates the work inside it.
-- KEYS[1] leased   KEYS[2] due   KEYS[3] dead   KEYS[4] stats   KEYS[5] events channel
-- KEYS[6] callback lane's due set   KEYS[7] callback lane's wake channel
-- KEYS[7+i] record of task i (i = 1..N), then the callback lane records of the tasks that have a
-- callback (the worker knows which from their claim)
-- ARGV[1] task key prefix   ARGV[2] poll deadline, ms after creation (0 = none)
-- ARGV[3] max attempts   ARGV[4] dead record ttl (ms)   ARGV[5] N, the number of tasks
-- ARGV[6] '1' in the draining form (Redis is at maxmemory), else '0'
-- ARGV[7] draining form: how long (ms) a result that does not fit waits before its task is called
-- again
-- then eight ARGV per task i, from ARGV[8*i]: kind (done|processing|submitted|waiting|throttled|
-- failed),
-- claim token, data (JSON text) or error, delay (ms), permanent (1|0, for failed), remote id (for
-- submitted; '' otherwise), the KEYS index of its callback lane record (0: none), the values kept
-- from a submit's answer (a JSON object, for submitted; '' otherwise)
-- Returns one code per task: 1 recorded (or already recorded by this token), 2 recorded and the
-- task is now dead, 3 (draining form only) the result did not fit: the task waits, due again
-- after ARGV[7], its data as before, 0 stale token (the lease was lost; counted).
-- Memory: grows, so Redis refuses it at maxmemory: results and partial data are written in full.
-- At maxmemory the worker runs the same script in its draining form (flags=allow-oom, ARGV[6]
-- '1', see finish.rs): it moves every task on as asked, but writes no text larger than what it
-- replaces (`fits`): a result takes the place of the partial data and last error, and of the
-- payload if it must (the done record then keeps no payload); a result larger than all three
-- waits for room; partial data larger than the last keeps the last; an error is cut to the
-- length of the last one (at least ERROR_ROOM bytes). What it still adds is small and bounded:
-- states, times, counters, remote ids and kept values (a few URLs), a callback's lane record.
local prefix, max_poll = ARGV[1], tonumber(ARGV[2])
local max_attempts, dead_ttl, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local draining, wait_for_room = ARGV[6] == '1', tonumber(ARGV[7])
local ERROR_ROOM = 256
local now = now_ms()
local codes, finished = {}, {}
local done, snoozed, retried, throttled, deferred, dropped = 0, 0, 0, 0, 0, 0
-- The length of the text fields of `key` named in `fields` (what a new text would replace).
local function held(key, fields)
  local bytes = 0
  for _, value in ipairs(redis.call('HMGET', key, unpack(fields))) do
    if value then bytes = bytes + #value end
  end
  return bytes
end
-- Whether `text` may be written in place of the fields: always, unless draining.
local function fits(key, text, fields)
  return not draining or #text <= held(key, fields)
end
-- `text` cut to at most `max` bytes, between UTF-8 characters.
local function clip(text, max)
  if #text <= max then return text end
  local cut = max
  while cut > 0 do
    local byte = string.byte(text, cut + 1)
    if byte < 128 or byte >= 192 then break end
    cut = cut - 1
  end
  return string.sub(text, 1, cut)
end
-- An error as it may be written: whole, or when draining cut to the last error's length.
local function error_text(key, text)
  if not draining then return text end
  return clip(text, math.max(ERROR_ROOM, held(key, {'error'})))
end
-- Past the poll deadline, a task waiting on the API (processing, throttled) is dead.
local function overdue(key)
  return max_poll > 0 and now - tonumber(redis.call('HGET', key, 'created')) >= max_poll
end
for i = 8, 7 + n do
  local key, name = KEYS[i], name_of(KEYS[i], prefix)
  local a = 8 * (i - 7)
  local kind, token, text, delay = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local permanent, remote_id = ARGV[a + 4] == '1', ARGV[a + 5]
  local lane, kept = KEYS[tonumber(ARGV[a + 6])], ARGV[a + 7]
  local own = ownership(key, token, KEYS[4])
  local code = 1
  if own == 'stale' then
    code = 0
  elseif own == 'own' then
    finished[#finished + 1] = name
    if kind == 'done' and not fits(key, text, {'data', 'error', 'payload'}) then
      -- Draining, and no room for the result: the task waits for room, its data as before.
      schedule(key, name, now + wait_for_room, now, KEYS[2])
      deferred = deferred + 1
      code = 3
    elseif kind == 'done' then
      if not fits(key, text, {'data', 'error'}) then
        redis.call('HDEL', key, 'payload')
        dropped = dropped + 1
      end
      local at = int(now)
      redis.call('HDEL', key, 'error', 'hook')
      redis.call('HSET', key, 'state', 'done', 'data', text, 'updated', at, 'done_at', at)
      redis.call('PEXPIRE', key, redis.call('HGET', key, 'ttl') or '3600000')
      tell(name, 'done')
      hand_callback(key, name, now, lane, KEYS[6])
      done = done + 1
    elseif kind == 'processing' or kind == 'submitted' then
      local fields = {'attempts', '0'}
      if fits(key, text, {'data'}) then
        fields[3], fields[4] = 'data', text
      end
      if kind == 'submitted' then
        fields[#fields + 1], fields[#fields + 2] = 'remote_id', remote_id
        if kept ~= '' then
          fields[#fields + 1], fields[#fields + 2] = 'kept', kept
        end
      else
        redis.call('HINCRBY', key, 'polls', '1')
      end
      redis.call('HSET', key, unpack(fields))
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
    elseif kind == 'waiting' then
      if overdue(key) then
        bury(key, name, now, error_text(key, text), KEYS[3], KEYS[4], dead_ttl, lane, KEYS[6])
        code = 2
      else
        if redis.call('HDEL', key, 'hurried') == 1 then delay = 0 end
        schedule(key, name, now + delay, now, KEYS[2], 'processing')
        snoozed = snoozed + 1
      end
    elseif kind == 'throttled' then
      local times = redis.call('HINCRBY', key, 'throttled', '1')
      if overdue(key) then
        bury(key, name, now, error_text(key, 'poll deadline passed: throttled ' .. times ..
          ' times, last: ' .. text), KEYS[3], KEYS[4], dead_ttl, lane, KEYS[6])
        code = 2
      else
        redis.call('HSET', key, 'error', error_text(key, text))
        schedule(key, name, now + delay, now, KEYS[2])
        throttled = throttled + 1
      end
    else
      local attempts = redis.call('HINCRBY', key, 'attempts', '1')
      if permanent or attempts >= max_attempts then
        bury(key, name, now, error_text(key, text), KEYS[3], KEYS[4], dead_ttl, lane, KEYS[6])
        code = 2
      else
        redis.call('HSET', key, 'error', error_text(key, text))
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
if deferred > 0 then redis.call('HINCRBY', KEYS[4], 'results_deferred', int(deferred)) end
if dropped > 0 then redis.call('HINCRBY', KEYS[4], 'payloads_dropped', int(dropped)) end
publish_changes(KEYS[5])
wake_callbacks(KEYS[7])
return codes
