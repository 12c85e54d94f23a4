#!lua flags=allow-oom
-- server.lua: what the Redis holding the queue says about itself, and the queue's size, for
-- admission control and the configuration checks; it also stores the memory it read as the
-- latest reading, from which enqueue.lua's admission starts. Run through the queue's keys so
-- that on a cluster it reaches the master holding the queue.
-- KEYS[1] due   KEYS[2] leased   KEYS[3] memory (the latest reading, see prelude.lua)
-- Returns {used_memory, maxmemory (0: none), maxmemory_policy, aof_enabled (0|1), queued,
-- replicas online}, where queued counts the tasks waiting for a call or in one (due and
-- leased).
-- Memory: drains, so it runs at maxmemory: besides reading, it only rewrites the small hash of the
-- reading, from which the enqueue's admission starts.
local used, max, memory = read_memory(KEYS[3], now_ms())
local persistence = redis.call('INFO', 'persistence')
local replication = redis.call('INFO', 'replication')
return {
  used,
  max,
  info_field(memory, 'maxmemory_policy') or '',
  tonumber(info_field(persistence, 'aof_enabled')) or 0,
  redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]),
  -- Replicas that acknowledge writes (WAIT counts only these): those online, not those syncing.
  select(2, string.gsub(replication, 'state=online', '')),
}