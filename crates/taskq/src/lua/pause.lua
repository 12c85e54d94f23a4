#!lua flags=allow-oom
-- pause.lua: the API asked to be left alone (429 or 503 with Retry-After): no permit of this limit
-- is granted to anyone until then, and calls resume at the limit's pace, not in one burst.
-- KEYS[1] paused   KEYS[2] state   (as in acquire.lua)
-- ARGV[1] pause (ms)   ARGV[2] calls per second (0: no rate)   ARGV[3] burst
-- Returns 1 when this call paused the limit, 2 when it made a pause longer, 0 when a pause at
-- least as long was already on.
-- Memory: drains, so it runs at maxmemory: one small key with an expiry.
local pause = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left >= pause then
  return 0
end
redis.call('SET', KEYS[1], '1', 'PX', int(pause))
local per_sec, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
if per_sec > 0 then
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local interval = 1000000 / per_sec
  local earliest = now_us + pause * 1000 + (burst - 1) * interval
  local tat = math.max(tonumber(redis.call('HGET', KEYS[2], 'tat') or '0'), earliest)
  redis.call('HSET', KEYS[2], 'tat', int(math.ceil(tat)))
  -- Longer, never shorter: the grant counter in it must outlive the window's log.
  local keep = math.ceil((tat - now_us) / 1000) + 1000
  if redis.call('PTTL', KEYS[2]) < keep then
    redis.call('PEXPIRE', KEYS[2], int(keep))
  end
end
if left > 0 then
  return 2
end
return 1
