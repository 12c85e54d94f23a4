-- claim.lua: lease up to N due tasks to one worker, each with a fresh token.
-- Task records are found from the queue's key prefix: their names are only known once read from
-- the due set. They share the queue's hash tag, so on a cluster they live in the same slot.
-- KEYS[1] due   KEYS[2] leased   KEYS[3] dead   KEYS[4] token sequence   KEYS[5] stats
-- ARGV[1] task key prefix   ARGV[2] N   ARGV[3] lease (ms)   ARGV[4] expired leases to reap first
-- ARGV[5] max attempts   ARGV[6] dead record ttl (ms)
-- Returns {ms until the earliest remaining due task (-1: none), then per task: name, token, attempts, polls}.
local prefix, n, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
reap_expired(KEYS[2], KEYS[1], KEYS[3], KEYS[5], prefix, now, tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6]))
local names = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n)
local out = {-1}
if #names > 0 then
  local last = redis.call('INCRBY', KEYS[4], #names)
  local first = last - #names
  local deadline = now + lease
  redis.call('ZREM', KEYS[1], unpack(names))
  for i, name in ipairs(names) do
    local key = prefix .. name
    local token = tostring(first + i)
    local f = redis.call('HMGET', key, 'attempts', 'polls')
    redis.call('HSET', key, 'state', 'running', 'token', token, 'updated', now)
    redis.call('HINCRBY', key, 'claims', 1)
    redis.call('ZADD', KEYS[2], deadline, name)
    out[#out + 1] = name
    out[#out + 1] = token
    out[#out + 1] = f[1] or '0'
    out[#out + 1] = f[2] or '0'
  end
  redis.call('HINCRBY', KEYS[5], 'claimed', #names)
end
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next_due[2] then
  out[1] = math.max(0, tonumber(next_due[2]) - now)
end
return out
