-- wrk's script for bench/ingest_wrk.py: POSTs pre-signed Intercom notifications, each once.
--
--   wrk -t T -c C -d Ds -s bench/ingest_wrk.lua URL -- REQUESTS T
--
-- REQUESTS has one request a line: the X-Hub-Signature value, a tab, the JSON body (one line).
-- Thread k of T sends lines k, k+T, k+2T, ... in order. A thread that runs out stops rather
-- than send a body again (a redelivery is cheaper than a new delivery and would flatter the
-- rate); ``done`` then says so, as wrk still divides by the whole duration.

local counter = 0
local requests = {}
local sent = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end

function init(args)
  local stride = tonumber(args[2])
  local n = 0
  for line in io.lines(args[1]) do
    if n % stride == index then
      local tab = line:find("\t", 1, true)
      local headers = {
        ["Content-Type"] = "application/json",
        ["X-Hub-Signature"] = line:sub(1, tab - 1),
      }
      requests[#requests + 1] = wrk.format("POST", nil, headers, line:sub(tab + 1))
    end
    n = n + 1
  end
end

function request()
  sent = sent + 1
  if sent > #requests then
    wrk.thread:stop()
    sent = #requests
  end
  return requests[sent]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
