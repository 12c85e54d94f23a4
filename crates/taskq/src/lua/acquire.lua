-- acquire.lua: grants up to n permits of one shared limit, or says how long to wait. A permit is
-- one call to the API: it spends the rate (GCRA, and a count over a sliding window) and, when
-- calls in flight are capped, holds a place in flight until it is given back or its lease ends.
-- KEYS[1] state (HASH: tat = theoretical arrival time in µs, seq = last grant number)
-- KEYS[2] granted (ZSET: grant number -> grant time in µs, the sliding window's log)
-- KEYS[3] in flight (ZSET: permit id -> lease deadline in ms)
-- KEYS[4] paused (STRING with a PX expiry: present while the API asked everyone to wait)
-- ARGV[1] permits wanted   ARGV[2] calls per second (0: no rate)   ARGV[3] burst
-- ARGV[4] window (µs)      ARGV[5] calls in flight at most (0: no cap)   ARGV[6] lease (ms)
-- ARGV[6+i] the id of permit i (with a cap on calls in flight)
-- Returns {granted, wait (ms, when none was granted), why none (0 granted, 1 paused, 2 in flight,
-- 3 rate, 4 window), permits in flight after this call}.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local n = tonumber(ARGV[1])
local per_sec, burst, window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local max_in_flight, lease = tonumber(ARGV[5]), tonumber(ARGV[6])

local paused = redis.call('PTTL', KEYS[4])
if paused > 0 then
  return {0, paused, 1, redis.call('ZCARD', KEYS[3])}
end

local in_flight = 0
if max_in_flight > 0 then
  -- A consumer that died holding permits gives them back here, once their leases end.
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', int(now))
  in_flight = redis.call('ZCARD', KEYS[3])
  n = math.min(n, max_in_flight - in_flight)
  if n <= 0 then
    local first = redis.call('ZRANGE', KEYS[3], '0', '0', 'WITHSCORES')
    return {0, math.max(1, tonumber(first[2]) - now), 2, in_flight}
  end
end

if per_sec > 0 then
  local interval = 1000000 / per_sec
  local tat = math.max(tonumber(redis.call('HGET', KEYS[1], 'tat') or '0'), now_us)
  -- GCRA: the permits that fit before the theoretical arrival time runs a burst ahead of now.
  local fit = math.floor((burst * interval - (tat - now_us)) / interval + 1e-9)
  n = math.min(n, fit)
  if n <= 0 then
    return {0, math.max(1, math.ceil((tat + interval - burst * interval - now_us) / 1000)), 3, in_flight}
  end
  -- The sliding window: at most per_sec grants in any window, whatever the burst.
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', int(now_us - window))
  n = math.min(n, math.ceil(per_sec) - redis.call('ZCARD', KEYS[2]))
  if n <= 0 then
    local first = redis.call('ZRANGE', KEYS[2], '0', '0', 'WITHSCORES')
    return {0, math.max(1, math.ceil((tonumber(first[2]) + window - now_us) / 1000)), 4, in_flight}
  end
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', int(n))
  local log = {}
  for i = 1, n do
    log[#log + 1] = int(now_us)
    log[#log + 1] = int(seq - n + i)
  end
  redis.call('ZADD', KEYS[2], unpack(log))
  tat = tat + n * interval
  redis.call('HSET', KEYS[1], 'tat', int(math.ceil(tat)))
  -- Idle limits leave nothing behind once neither their window nor their arrival time matters.
  local keep = int(math.ceil(math.max(window, tat - now_us) / 1000) + 1000)
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('PEXPIRE', KEYS[2], keep)
end

if max_in_flight > 0 then
  local leased = {}
  for i = 1, n do
    leased[#leased + 1] = int(now + lease)
    leased[#leased + 1] = ARGV[6 + i]
  end
  redis.call('ZADD', KEYS[3], unpack(leased))
  redis.call('PEXPIRE', KEYS[3], int(lease * 2))
  in_flight = in_flight + n
end
return {n, 0, 0, in_flight}
