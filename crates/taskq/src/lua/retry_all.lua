#!lua
-- retry_all.lua: an operator brings back a batch of dead tasks (the client names them, oldest
-- first, with list.lua). A candidate whose record is no longer dead (it expired, or the name was
-- enqueued anew since) is only dropped from the dead set, so repeated calls always make progress.
-- KEYS[1] dead   KEYS[2] due   KEYS[3] stats   KEYS[4] events channel   KEYS[5..] candidate records
-- ARGV[1] task key prefix
-- Returns the number of tasks requeued.
-- Memory: grows, so Redis refuses it at maxmemory: revived tasks go back to work, whose answers
-- add data.
local now = now_ms()
local revived = 0
for i = 5, #KEYS do
  local name = name_of(KEYS[i], ARGV[1])
  if revive(KEYS[i], name, now, KEYS[1], KEYS[2], KEYS[3]) then
    revived = revived + 1
  else
    redis.call('ZREM', KEYS[1], name)
  end
end
publish_changes(KEYS[4])
return revived
