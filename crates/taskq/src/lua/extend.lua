#!lua flags=allow-oom
-- extend.lua: renew the leases a worker still holds, in one call.
-- KEYS[1] leased   KEYS[2..] task records
-- ARGV[1] lease (ms)   ARGV[2] task key prefix   ARGV[i+1]: the claim token of the task in KEYS[i]
-- Returns the 1-based positions of the tasks whose lease was lost: the token changed (reaped,
-- cancelled, claimed by another worker) or the record is gone. A task this token already recorded
-- (state no longer running, token unchanged) is not lost: the renewal raced its answer.
-- Memory: drains, so it runs at maxmemory: it only moves lease deadlines; refusing it would let
-- leases end and the tasks be called twice.
local deadline = int(now_ms() + tonumber(ARGV[1]))
local lost = {}
for i = 2, #KEYS do
  local name, token = name_of(KEYS[i], ARGV[2]), ARGV[i + 1]
  local cur = redis.call('HMGET', KEYS[i], 'token', 'state')
  if cur[1] ~= token then
    lost[#lost + 1] = i - 1
  elseif cur[2] == 'running' then
    redis.call('ZADD', KEYS[1], 'XX', deadline, name)
  end
end
return lost
