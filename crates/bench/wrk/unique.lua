-- W1 request generator: every request enqueues a name never sent before,
-- "<prefix>-<thread>-<counter>"; the prefix (the script's first argument, after `--`) keeps
-- names unique across runs on the same Redis, so every request takes the "created" path.
-- done() prints one line "BENCHJSON {...}": requests/s, latency percentiles in ms, errors.
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  prefix = args[1] or "w1"
  counter = 0
end

function request()
  counter = counter + 1
  return wrk.format("GET", "/?task-name=" .. prefix .. "-" .. id .. "-" .. counter)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,' ..
    '"p99_ms":%.3f,"max_ms":%.3f,"errors":%d,"non_2xx":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect + e.read + e.write + e.timeout, e.status))
end
