#!lua flags=allow-oom
-- reap.lua: the periodic sweep any consumer may run; idempotent.
-- Takes back expired leases, then prunes dead tasks older than the dead ttl or beyond the dead
-- cap. As in claim.lua, the client passes candidates (the earliest entries of `leased` and of
-- `dead`) whose records are declared as keys, and every candidate is re-checked here.
-- KEYS[1] leased   KEYS[2] due   KEYS[3] dead   KEYS[4] stats   KEYS[5] events channel
-- KEYS[6] callback lane's due set   KEYS[7] callback lane's wake channel
-- KEYS[8 .. 7+L] records of the lease candidates   KEYS[8+L .. 7+2L] their callback lane records
-- KEYS[8+2L ..] records of the dead candidates, oldest first
-- ARGV[1] task key prefix   ARGV[2] L   ARGV[3] max attempts   ARGV[4] dead ttl (ms)
-- ARGV[5] dead cap (count kept)
-- Returns {leases reaped, dead records pruned}.
-- Memory: drains, so it runs at maxmemory: it moves expired leases back to the due set (fixed-size
-- fields; a burial may hand a callback record to the lane) and deletes old dead records.
local prefix, l = ARGV[1], tonumber(ARGV[2])
local max_attempts, dead_ttl, dead_cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local reaped = 0
for i = 8, 7 + l do
  reaped = reaped + reap_if_expired(KEYS[i], name_of(KEYS[i], prefix), KEYS[1], KEYS[2],
    KEYS[3], KEYS[4], now, max_attempts, dead_ttl, KEYS[i + l], KEYS[6])
end
local pruned = 0
local kept = redis.call('ZCARD', KEYS[3])
for i = 8 + 2 * l, #KEYS do
  local name = name_of(KEYS[i], prefix)
  local died = redis.call('ZSCORE', KEYS[3], name)
  if died and ((dead_ttl > 0 and tonumber(died) <= now - dead_ttl) or kept > dead_cap) then
    redis.call('ZREM', KEYS[3], name)
    if redis.call('HGET', KEYS[i], 'state') == 'dead' then redis.call('DEL', KEYS[i]) end
    kept = kept - 1
    pruned = pruned + 1
  end
end
publish_changes(KEYS[5])
wake_callbacks(KEYS[7])
return {reaped, pruned}
