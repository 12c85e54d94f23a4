#!lua flags=allow-oom
-- release.lua: a worker hands a task back unrun (shutdown): due at once, no attempt counted.
-- KEYS[1] task record   KEYS[2] leased   KEYS[3] due   KEYS[4] stats   KEYS[5] events channel
-- ARGV[1] task key prefix   ARGV[2] claim token
-- Returns 1 released, 0 stale token.
-- Memory: drains, so it runs at maxmemory: it moves a task from the leased set back to the due set
-- and rewrites fixed-size fields.
local own = ownership(KEYS[1], ARGV[2], KEYS[4])
if own == 'stale' then return 0 end
if own == 'replay' then return 1 end
local now, name = now_ms(), name_of(KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], name)
redis.call('HINCRBY', KEYS[1], 'claims', '-1')
schedule(KEYS[1], name, now, now, KEYS[3])
redis.call('HINCRBY', KEYS[4], 'released', '1')
publish_changes(KEYS[5])
return 1
