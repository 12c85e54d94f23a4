#!lua flags=no-writes
-- stats.lua: a snapshot of the queue for the admin API and /metrics, in one round trip. Reads only.
-- KEYS[1] due   KEYS[2] leased   KEYS[3] dead   KEYS[4] cancelled   KEYS[5] stats
-- ARGV[1] how long cancelled records are kept (ms): older entries of the cancelled set are gone
-- Returns {server time (ms), due, due now, run-at of the earliest due task (-1: none), running,
-- dead, cancelled, HGETALL of the counters}.
-- Memory: reads only, so it runs at maxmemory.
local now = now_ms()
local first = redis.call('ZRANGE', KEYS[1], '0', '0', 'WITHSCORES')
return {
  now,
  redis.call('ZCARD', KEYS[1]),
  redis.call('ZCOUNT', KEYS[1], '-inf', now),
  tonumber(first[2] or '-1'),
  redis.call('ZCARD', KEYS[2]),
  redis.call('ZCARD', KEYS[3]),
  redis.call('ZCOUNT', KEYS[4], '(' .. (now - tonumber(ARGV[1])), '+inf'),
  redis.call('HGETALL', KEYS[5]),
}
