#!lua flags=allow-oom
-- claim.lua: lease due tasks to one worker, each with a fresh token, after taking back expired
-- leases among the given candidates.
-- The client reads candidates first (the earliest entries of `due` and of `leased`) and declares
-- their records as keys; this script re-checks each against the server clock, so a candidate
-- that another worker took meanwhile, or that is not due yet, is skipped.
-- KEYS[1] due   KEYS[2] leased   KEYS[3] dead   KEYS[4] token sequence   KEYS[5] stats
-- KEYS[6] events channel   KEYS[7] callback lane's due set   KEYS[8] callback lane's wake channel
-- KEYS[9 .. 8+D] records of the due candidates   KEYS[9+D .. 8+D+L] records of the L lease
-- candidates   KEYS[9+D+L .. 8+D+2L] their callback lane records (a lease taken back at the
-- attempt limit buries its task, which hands its callback over)
-- ARGV[1] task key prefix   ARGV[2] D   ARGV[3] lease (ms)   ARGV[4] max attempts
-- ARGV[5] dead record ttl (ms)   ARGV[6] how many tasks to claim at most
-- ARGV[7] '1' when the queue's calls start with a submit: a task without a remote id and without
-- a submit token gets this claim's token as its submit token (its submit's idempotency key for
-- the rest of its life, whoever submits and however often)
-- A lease taken back here is due at once, so it may be claimed in the same call.
-- Returns {ms until the earliest remaining due task (-1: none; 0: more are due now), then per
-- claimed task: name, token, attempts, polls, payload, throttled, '1' when it has a callback
-- ('0' otherwise), and when ARGV[7] is '1' remote id, submit token, the values kept from the
-- submit's answer and the latest webhook body ('' for absent text, '0' for absent counters)}. A
-- queue that does not submit is answered four fields a task fewer (measured: W2's drain spends
-- less on the reply).
-- Memory: drains, so it runs at maxmemory: it moves due tasks to the leased set and rewrites
-- fixed-size fields of records that exist (state, token, counters); a lease taken back at the
-- attempt limit buries its task, which may hand a callback record of a few hundred bytes to the
-- lane. Refusing it would stop the very work that frees memory.
local prefix, d, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local max_attempts, dead_ttl, limit = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local submits = ARGV[7] == '1'
local now = now_ms()
local l = (#KEYS - 8 - d) / 2
for i = 9 + d, 8 + d + l do
  reap_if_expired(KEYS[i], name_of(KEYS[i], prefix), KEYS[2], KEYS[1], KEYS[3], KEYS[5], now,
    max_attempts, dead_ttl, KEYS[i + l], KEYS[7])
end
-- The two candidate lists are read without a transaction, so a name can be in both: claim once.
local names, keys, seen = {}, {}, {}
for i = 9, 8 + d + l do
  if #names >= limit then break end
  local name = name_of(KEYS[i], prefix)
  local run_at = redis.call('ZSCORE', KEYS[1], name)
  if run_at and tonumber(run_at) <= now and not seen[name] then
    seen[name] = true
    names[#names + 1] = name
    keys[#keys + 1] = KEYS[i]
  end
end
local out = {-1}
if #names > 0 then
  local first = redis.call('INCRBY', KEYS[4], int(#names)) - #names
  local deadline, updated = int(now + lease), int(now)
  redis.call('ZREM', KEYS[1], unpack(names))
  for i, name in ipairs(names) do
    local key = keys[i]
    local token = int(first + i)
    local f, remote_id, submit_token
    if submits then
      f = redis.call('HMGET', key, 'attempts', 'polls', 'payload', 'throttled', 'callback_url',
        'remote_id', 'submit_token', 'kept', 'hook')
      remote_id, submit_token = f[6], f[7]
    else
      -- A queue that does not submit has neither remote ids nor submit tokens: read less.
      f = redis.call('HMGET', key, 'attempts', 'polls', 'payload', 'throttled', 'callback_url')
    end
    if submits and not remote_id and not submit_token then
      submit_token = token
      redis.call('HSET', key, 'state', 'running', 'token', token, 'updated', updated,
        'submit_token', token)
    else
      redis.call('HSET', key, 'state', 'running', 'token', token, 'updated', updated)
    end
    redis.call('HINCRBY', key, 'claims', '1')
    redis.call('ZADD', KEYS[2], deadline, name)
    tell(name, 'running')
    out[#out + 1] = name
    out[#out + 1] = token
    out[#out + 1] = f[1] or '0'
    out[#out + 1] = f[2] or '0'
    out[#out + 1] = f[3] or ''
    out[#out + 1] = f[4] or '0'
    out[#out + 1] = f[5] and '1' or '0'
    if submits then
      out[#out + 1] = remote_id or ''
      out[#out + 1] = submit_token or ''
      out[#out + 1] = f[8] or ''
      out[#out + 1] = f[9] or ''
    end
  end
  redis.call('HINCRBY', KEYS[5], 'claimed', int(#names))
end
publish_changes(KEYS[6])
wake_callbacks(KEYS[8])
local next_due = redis.call('ZRANGE', KEYS[1], '0', '0', 'WITHSCORES')
if next_due[2] then
  out[1] = math.max(0, tonumber(next_due[2]) - now)
end
return out
