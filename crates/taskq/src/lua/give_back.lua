#!lua flags=allow-oom
-- give_back.lua: returns permits of one shared limit: places in flight whose calls have ended,
-- and permits granted for calls that will not be made (fewer tasks were due than permits
-- granted), so the rate they spent is spent again.
-- KEYS[1] state   KEYS[2] granted   KEYS[3] in flight   KEYS[4] paused   (as in acquire.lua)
-- ARGV[1] calls per second (0: no rate)   ARGV[2] unused permits u
-- ARGV[2+i], i <= u: the grant number of unused permit i   ARGV[2+u+j]: permit ids leaving flight
-- While the limit is paused, the arrival time stays where the pause put it (calls resume at the
-- pace): only the log entries go.
-- Memory: drains, so it runs at maxmemory: it only removes log entries and places in flight.
local per_sec, unused = tonumber(ARGV[1]), tonumber(ARGV[2])
if unused > 0 and per_sec > 0 then
  local tat = redis.call('HGET', KEYS[1], 'tat')
  if tat and redis.call('EXISTS', KEYS[4]) == 0 then
    redis.call('HSET', KEYS[1], 'tat', int(tonumber(tat) - unused * 1000000 / per_sec))
  end
  redis.call('ZREM', KEYS[2], unpack(ARGV, 3, 2 + unused))
end
if #ARGV > 2 + unused then
  redis.call('ZREM', KEYS[3], unpack(ARGV, 3 + unused))
end
return true
