#!lua flags=allow-oom
-- purge.lua: an operator deletes finished records (done, dead or cancelled); their names may then
-- be enqueued anew. The client names a batch of candidates (list.lua); each record is deleted
-- only if it is still in that state. Dead and cancelled candidates also leave their sorted set,
-- whatever their record holds now (an entry whose record expired, or whose name was enqueued
-- anew since, is stale), so repeated calls always make progress.
-- KEYS[1] stats   KEYS[2] the state's sorted set (dead, cancelled; done has none: stats again)
-- KEYS[3..] candidate records
-- ARGV[1] state   ARGV[2] task key prefix
-- Returns the number of records deleted.
-- Memory: drains, so it runs at maxmemory: it only deletes, which is how an operator frees memory.
local state, prefix, deleted = ARGV[1], ARGV[2], 0
for i = 3, #KEYS do
  if state ~= 'done' then redis.call('ZREM', KEYS[2], name_of(KEYS[i], prefix)) end
  if redis.call('HGET', KEYS[i], 'state') == state then
    redis.call('DEL', KEYS[i])
    deleted = deleted + 1
  end
end
redis.call('HINCRBY', KEYS[1], 'purged', int(deleted))
return deleted
