-- reap.lua: the periodic sweep any consumer may run; idempotent.
-- Takes back expired leases, then prunes dead tasks older than the dead ttl or beyond the dead cap.
-- KEYS[1] leased   KEYS[2] due   KEYS[3] dead   KEYS[4] stats
-- ARGV[1] task key prefix   ARGV[2] limit per sweep   ARGV[3] max attempts   ARGV[4] dead ttl (ms)
-- ARGV[5] dead cap (count kept)
-- Returns {leases reaped, dead records pruned}.
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local dead_ttl, dead_cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local reaped = reap_expired(KEYS[1], KEYS[2], KEYS[3], KEYS[4], prefix, now, limit, tonumber(ARGV[3]), dead_ttl)
local prune = {}
if dead_ttl > 0 then
  prune = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - dead_ttl, 'LIMIT', 0, limit)
end
local excess = redis.call('ZCARD', KEYS[3]) - #prune - dead_cap
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[3], #prune, #prune + math.min(excess, limit) - 1)
  for _, name in ipairs(oldest) do prune[#prune + 1] = name end
end
for _, name in ipairs(prune) do
  redis.call('ZREM', KEYS[3], name)
  local key = prefix .. name
  if redis.call('HGET', key, 'state') == 'dead' then redis.call('DEL', key) end
end
return {reaped, #prune}
