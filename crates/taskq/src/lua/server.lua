-- server.lua: what the Redis holding the queue says about itself, and the queue's size, for
-- admission control and the configuration checks. Reads only, so it runs even when Redis is at
-- maxmemory (a script is refused there only at its first write). Run through the queue's keys so
-- that on a cluster it reaches the master holding the queue.
-- KEYS[1] due   KEYS[2] leased
-- Returns {used_memory, maxmemory (0: none), maxmemory_policy, aof_enabled (0|1), queued}, where
-- queued counts the tasks waiting for a call or in one (due and leased).
local memory = redis.call('INFO', 'memory')
local persistence = redis.call('INFO', 'persistence')
local function field(text, name)
  return string.match(text, '\r\n' .. name .. ':([^\r]*)') or string.match(text, '^' .. name .. ':([^\r]*)')
end
return {
  tonumber(field(memory, 'used_memory')) or 0,
  tonumber(field(memory, 'maxmemory')) or 0,
  field(memory, 'maxmemory_policy') or '',
  tonumber(field(persistence, 'aof_enabled')) or 0,
  redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]),
}
