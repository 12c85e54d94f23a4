#!lua flags=no-writes
-- list.lua: the next names in one state, oldest first, after a cursor: what the admin API pages
-- through, and what purge and retry-all take in batches. Reads only; touches no task record (the
-- client reads the records it gets here, declaring each, as every script of a cluster must).
-- Index mode (every state but done) walks the state's sorted set from just after the cursor
-- (score, name). Sorted sets order equal scores by name, bytewise, so (score, name) orders the
-- set wholly: paging neither skips nor repeats an entry that stays where it is, and a binary
-- search finds the place even when the cursor's own entry has left the set.
-- Scan mode (done: no index of done tasks is kept, so finishing a task costs nothing more) runs
-- SCAN over the queue's task records from the cursor, a bounded number of steps.
-- KEYS[1] index mode: the state's sorted set; scan mode: the stats hash (it routes the call to
-- the queue's node)
-- ARGV[1] 'index' | 'scan'   ARGV[2] how many names   ARGV[3] cursor ('' = the start; index
-- mode: a score, scan mode: a SCAN cursor)   ARGV[4] index mode: the cursor's name; scan mode:
-- the task key prefix
-- Returns {next cursor ('' at the end), then index mode: name, score, name, score, ...; scan
-- mode: record key, record key, ...}.
-- Memory: reads only, so it runs at maxmemory.
local n = tonumber(ARGV[2])

if ARGV[1] == 'scan' then
  local cursor = ARGV[3] == '' and '0' or ARGV[3]
  local out, steps = {''}, 0
  repeat
    local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[4] .. '*', 'COUNT', int(n))
    cursor, steps = reply[1], steps + 1
    for _, key in ipairs(reply[2]) do out[#out + 1] = key end
  until cursor == '0' or #out > n or steps >= 10
  if cursor ~= '0' then out[1] = cursor end
  return out
end

-- Whether `a` sorts after `b` bytewise, as Redis orders equal scores (Lua's `<` follows the locale).
local function after(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end

local index, start = KEYS[1], 0
if ARGV[3] ~= '' then
  local score, name = ARGV[3], ARGV[4]
  local lo = redis.call('ZCOUNT', index, '-inf', '(' .. score)
  local hi = redis.call('ZCOUNT', index, '-inf', score)
  while lo < hi do -- the first entry of that score whose name sorts after the cursor's
    local mid = math.floor((lo + hi) / 2)
    if after(redis.call('ZRANGE', index, int(mid), int(mid))[1], name) then hi = mid else lo = mid + 1 end
  end
  start = lo
end
local entries = redis.call('ZRANGE', index, int(start), int(start + n - 1), 'WITHSCORES')
local out = {''}
if #entries == 2 * n and start + n < redis.call('ZCARD', index) then out[1] = 'more' end
for _, v in ipairs(entries) do out[#out + 1] = v end
return out
