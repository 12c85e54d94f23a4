#!lua
-- retry.lua: an operator brings a dead task back: due at once with a fresh attempt budget.
-- KEYS[1] task record   KEYS[2] dead   KEYS[3] due   KEYS[4] stats   KEYS[5] events channel
-- ARGV[1] task key prefix
-- Returns 1 requeued, 0 the task is not dead.
-- Memory: grows, so Redis refuses it at maxmemory: a revived task goes back to work, whose
-- answers add data.
if not revive(KEYS[1], name_of(KEYS[1], ARGV[1]), now_ms(), KEYS[2], KEYS[3], KEYS[4]) then
  return 0
end
publish_changes(KEYS[5])
return 1
