-- give_back.lua: returns permits of one shared limit: places in flight whose calls have ended,
-- and permits granted for calls that will not be made (fewer tasks were due than permits
-- granted), so the rate they spent is spent again.
-- KEYS[1] state   KEYS[2] granted   KEYS[3] in flight   (as in acquire.lua)
-- ARGV[1] unused permits   ARGV[2] calls per second (0: no rate)   ARGV[2+i] permit ids leaving flight
-- Returns the permits in flight after this call.
local unused, per_sec = tonumber(ARGV[1]), tonumber(ARGV[2])
if unused > 0 and per_sec > 0 then
  local tat = redis.call('HGET', KEYS[1], 'tat')
  if tat then
    redis.call('HSET', KEYS[1], 'tat', int(tonumber(tat) - unused * 1000000 / per_sec))
  end
  redis.call('ZPOPMAX', KEYS[2], int(unused))
end
if #ARGV > 2 then
  redis.call('ZREM', KEYS[3], unpack(ARGV, 3))
end
return redis.call('ZCARD', KEYS[3])
