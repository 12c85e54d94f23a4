#!lua
-- enqueue.lua: add tasks unless one of the same name is live or has a stored result, and unless
-- the queue is full.
-- One call carries one task or many: concurrent enqueues share calls (see batcher.rs) and
-- submit_many sends its chunks here. Within a call tasks are added in order, so a name given
-- twice is created once (the second sees the first).
-- KEYS[1] due zset   KEYS[2] stats hash   KEYS[3] wake channel   KEYS[4] leased zset
-- KEYS[5] memory (the latest reading, see prelude.lua)   KEYS[5+i] record of task i
-- ARGV[1] result ttl (ms)   ARGV[2] '1': answer the record of a task already there, '0': answer 0
-- ARGV[3] task key prefix   ARGV[4] the high-water mark, in millionths of maxmemory (0: none)
-- ARGV[5] the most tasks the queue may hold, due and leased (0: no limit)
-- ARGV[6] '1' in the looking-up form (Redis is at maxmemory), else '0'
-- ARGV[4+3i]: payload (JSON text; '' for none) of task i   ARGV[5+3i]: when task i is due: ''
-- now, '+N' N ms from now, 'N' at N ms since the epoch (server time; a time already past is now)
-- ARGV[6+3i]: its callback URL ('' for none)
-- Returns {created, reason, figure, limit, r1, r2, ...}: `created` is the server time (ms) at
-- which the new tasks were created (and are due, unless scheduled later); `reason` is '' when no
-- task was refused, else why the queue is full ('memory': Redis would use `figure` bytes, past
-- the mark of `limit`; 'max_queued': the queue holds `figure` tasks of `limit`; 'maxmemory':
-- Redis is at maxmemory, in the looking-up form); r_i is 1 for a
-- task created now, -1 for a new task refused (the queue is full: it and every new task after it
-- in the call), else 0 or the record's HGETALL (the client knows the rest of a new record:
-- reading it back would cost Redis time). A task already there is answered even when full.
--
-- Admission: the mark must hold against a burst and against several producers, so it is kept
-- here, where every enqueue passes, rather than in each producer. The estimate is the latest
-- reading of used_memory plus what the enqueues wrote since (counted here, by every producer,
-- in the reading's hash); a task that would take it past the mark is refused only on a reading
-- at most FRESH_MS old, read again here when needed (INFO: tens of µs, paid only near the mark).
-- A reading older than STALE_MS is read again in any case (at most ten INFO calls a second), so
-- memory taken behind taskq's back is seen within that time, and a queue needs no other reader.
-- A task's bytes are estimated from a measurement of Redis 7 (jemalloc): a record and its entry
-- in the due set take about 670 to 1,200 bytes beside the payload, and jemalloc rounds a large
-- payload up by at most a quarter; 1,024 bytes plus a quarter of the payload over-estimates both.
-- Memory: grows, so Redis refuses it at maxmemory: it adds tasks. There a task already there must
-- still be answered, so the library sends the call again in the looking-up form (flags=no-writes,
-- ARGV[6] '1', see enqueue.rs), which answers the tasks already there and refuses the others.
local FRESH_MS, STALE_MS = 10, 100
local now_n = now_ms()
local now = int(now_n)
local ttl, records, prefix = ARGV[1], ARGV[2] == '1', ARGV[3]
local mark_ppm, max_queued = tonumber(ARGV[4]), tonumber(ARGV[5])
local lookup = ARGV[6] == '1'
if lookup then mark_ppm, max_queued = 0, 0 end

-- The estimate: `used` bytes (reading plus writes since), the `mark` (0: none), read `at`.
local used, mark, at, written = 0, 0, now_n, 0
local function reading_now()
  local max
  used, max = read_memory(KEYS[5], now_n)
  at, written = now_n, 0
  mark = math.floor(max * mark_ppm / 1000000)
end
if mark_ppm > 0 then
  local m = redis.call('HMGET', KEYS[5], 'used', 'max', 'at', 'written')
  if m[1] and now_n - tonumber(m[3]) < STALE_MS then
    used, at = tonumber(m[1]) + tonumber(m[4]), tonumber(m[3])
    mark = math.floor(tonumber(m[2]) * mark_ppm / 1000000)
  else
    reading_now()
  end
end
local queued = 0
if max_queued > 0 then
  queued = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[4])
end

-- Why the next new task cannot be added ({reason, figure, limit}), or nil when it can.
local function full(bytes)
  if lookup then
    return {'maxmemory', 0, 0}
  end
  if mark > 0 and used + bytes > mark and now_n - at >= FRESH_MS then
    reading_now()
  end
  if mark > 0 and used + bytes > mark then
    return {'memory', used + bytes, mark}
  end
  if max_queued > 0 and queued >= max_queued then
    return {'max_queued', queued, max_queued}
  end
  return nil
end

local replies, due, due_now, refused = {now, '', 0, 0}, {}, false, nil
for i = 6, #KEYS do
  local a = 3 * (i - 5) + 4
  local name, payload, when, callback = name_of(KEYS[i], prefix), ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local bytes = 1024 + #KEYS[i] + #name + #callback + math.ceil(#payload * 1.25)
  if redis.call('EXISTS', KEYS[i]) == 1 then
    replies[i - 1] = records and redis.call('HGETALL', KEYS[i]) or 0
  else
    refused = refused or full(bytes)
    if refused then
      replies[i - 1] = -1
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
      replies[i - 1] = 1
      used, written, queued = used + bytes, written + bytes, queued + 1
    end
  end
end
-- One ZADD per call (in slices, within Lua's stack limit for unpack).
for first = 1, #due, 1000 do
  redis.call('ZADD', KEYS[1], unpack(due, first, math.min(first + 999, #due)))
end
local created = #due / 2
if created > 0 then redis.call('HINCRBY', KEYS[2], 'enqueued', int(created)) end
local duplicates = #KEYS - 5 - created
if refused then
  replies[2], replies[3], replies[4] = refused[1], refused[2], refused[3]
  for i = 5, #replies do
    if replies[i] == -1 then duplicates = duplicates - 1 end
  end
end
if duplicates > 0 and not lookup then redis.call('HINCRBY', KEYS[2], 'duplicates', int(duplicates)) end
if written > 0 and mark_ppm > 0 then redis.call('HINCRBY', KEYS[5], 'written', int(written)) end
-- Idle consumers claim at once rather than at their next tick when a new task is due now.
if due_now then redis.call(PUBLISH, KEYS[3], '') end
return replies
