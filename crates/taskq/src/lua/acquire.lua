#!lua flags=allow-oom
-- acquire.lua: grants up to n permits of one shared limit for one moment, now or a little ahead
-- (a reservation), or says how long to wait. A permit is one call to the API: it spends the rate
-- (GCRA for the pace and the burst, and a log over a sliding window so that no window ever holds
-- more than the rate) and, when calls in flight are capped, holds a place in flight until it is
-- given back or its lease ends. Reserving a little ahead lets a caller take a batch of permits in
-- one call and sleep until their moment, instead of asking again at every interval.
-- KEYS[1] state (HASH: tat = theoretical arrival time in µs, seq = last grant number)
-- KEYS[2] granted (ZSET: grant number -> the moment it was granted for, in µs: the window's log)
-- KEYS[3] in flight (ZSET: permit id -> lease deadline in ms)
-- KEYS[4] paused (STRING with a PX expiry: present while the API asked everyone to wait)
-- ARGV[1] permits wanted   ARGV[2] calls per second (0: no rate)   ARGV[3] burst
-- ARGV[4] window (µs)   ARGV[5] how far ahead a moment may be reserved (µs)
-- ARGV[6] calls in flight at most (0: no cap)   ARGV[7] lease (ms)
-- ARGV[7+i] the id of permit i (with a cap on calls in flight)
-- Returns {granted, wait (ms): until the moment granted or, with none granted, until asking again
-- is worth it, why none (0 granted, 1 paused, 2 in flight, 3 rate), first grant number (the
-- permits hold numbers first .. first + granted - 1)}.
-- Memory: drains, so it runs at maxmemory: a limit's state is bounded (one hash, a log of at most
-- a window of grants, at most max-in-flight places); refusing it would stop every claim of a
-- limited queue, and with it the work that frees memory.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local n = tonumber(ARGV[1])
local per_sec, burst, window, ahead = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local max_in_flight, lease = tonumber(ARGV[6]), tonumber(ARGV[7])

local paused = redis.call('PTTL', KEYS[4])
if paused > 0 then
  return {0, paused, 1, 0}
end

if max_in_flight > 0 then
  -- A consumer that died holding permits gives them back here, once their leases end.
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', int(now))
  local in_flight = redis.call('ZCARD', KEYS[3])
  n = math.min(n, max_in_flight - in_flight)
  if n <= 0 then
    local first = redis.call('ZRANGE', KEYS[3], '0', '0', 'WITHSCORES')
    return {0, math.max(1, tonumber(first[2]) - now), 2, 0}
  end
end

local at, first_seq = now_us, 0
if per_sec > 0 then
  local interval = 1000000 / per_sec
  local cap = math.ceil(per_sec)
  local stored = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
  -- GCRA: m permits conform at t once the arrival time is no more than a burst ahead of t after
  -- them. Aim for a batch worth the round trip: as many as the reservation horizon holds.
  local m = math.max(1, math.min(n, burst, math.floor(ahead / interval)))
  at = math.max(now_us, stored - (burst - m) * interval)
  if at > now_us + ahead then
    -- Not m within reach: as many as conform at the horizon, or wait for the first.
    at = now_us + ahead
  end
  local function fit(moment)
    return math.floor((burst * interval - (math.max(stored, moment) - moment)) / interval + 1e-9)
  end
  if fit(at) < 1 then
    local first_at = math.max(now_us, stored - (burst - 1) * interval)
    return {0, math.max(1, math.ceil((first_at - now_us) / 1000) - math.floor(ahead / 1000)), 3, 0}
  end
  -- The sliding window, for the moment granted: fewer than cap grants in the window before it.
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', int(now_us - window))
  local held = redis.call('ZCOUNT', KEYS[2], '(' .. int(at - window), '+inf')
  if held >= cap then
    local total = redis.call('ZCARD', KEYS[2])
    local leaving = redis.call('ZRANGE', KEYS[2], int(total - cap), int(total - cap), 'WITHSCORES')
    at = math.max(at, tonumber(leaving[2]) + window)
    if at > now_us + ahead then
      return {0, math.max(1, math.ceil((at - now_us) / 1000) - math.floor(ahead / 1000)), 3, 0}
    end
    held = redis.call('ZCOUNT', KEYS[2], '(' .. int(at - window), '+inf')
  end
  n = math.min(n, fit(at), cap - held)
  if n <= 0 then
    return {0, math.max(1, math.ceil(interval / 1000)), 3, 0}
  end
  local last_seq = redis.call('HINCRBY', KEYS[1], 'seq', int(n))
  first_seq = last_seq - n + 1
  local log = {}
  for i = 1, n do
    log[#log + 1] = int(at)
    log[#log + 1] = int(first_seq + i - 1)
  end
  redis.call('ZADD', KEYS[2], unpack(log))
  local tat = math.max(stored, at) + n * interval
  redis.call('HSET', KEYS[1], 'tat', int(math.ceil(tat)))
  -- Idle limits leave nothing behind once neither their window nor their arrival time matters.
  local keep = int(math.ceil((math.max(at + window, tat) - now_us) / 1000) + 1000)
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[2], keep)
end

if max_in_flight > 0 then
  local leased = {}
  for i = 1, n do
    leased[#leased + 1] = int(now + lease)
    leased[#leased + 1] = ARGV[7 + i]
  end
  redis.call('ZADD', KEYS[3], unpack(leased))
  redis.call('PEXPIRE', KEYS[3], int(lease * 2))
end
return {n, math.max(0, math.ceil((at - now_us) / 1000)), 0, first_seq}
