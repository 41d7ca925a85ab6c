-- wrk script: POSTs pre-signed TaskRouter event forms, each once, in order, then again from the start.
--
-- BENCH_REQUESTS names a file of lines "<X-Twilio-Signature>\t<form body>", written by bench/run.py
-- (wrk has no HMAC-SHA1, and a transfer event must carry a new Sid each time to be enqueued).
-- BENCH_RATE, when set, paces the requests of each wrk thread to that many per second (one shared
-- schedule across its connections); unset, every connection sends as fast as it is answered.
-- done() prints one JSON line that bench/run.py reads.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local requests_ = {}
local next_index = 1
local interval_ms = nil
local next_due = nil
sent = 0
wrapped = 0

function init(args)
  local path = wrk.path
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    local signature, body = line:match("^([^\t]*)\t(.*)$")
    requests_[#requests_ + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
      ["User-Agent"] = "TwilioProxy/1.1",
    }, body)
  end
  local rate = tonumber(os.getenv("BENCH_RATE") or "")
  if rate and rate > 0 then
    interval_ms = 1000 / rate
  end
end

function delay()
  if interval_ms == nil then
    return 0
  end
  local now = now_ms()
  if next_due == nil or next_due < now - 1000 then
    next_due = now
  end
  local wait = next_due - now
  next_due = next_due + interval_ms
  if wait > 0 then
    return wait
  end
  return 0
end

function request()
  local r = requests_[next_index]
  next_index = next_index + 1
  sent = sent + 1
  if next_index > #requests_ then
    next_index = 1
    wrapped = wrapped + 1
  end
  return r
end

function done(summary, latency, requests)
  local total_wrapped, total_sent = 0, 0
  for _, thread in ipairs(threads) do
    total_wrapped = total_wrapped + (thread:get("wrapped") or 0)
    total_sent = total_sent + (thread:get("sent") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"mean_us":%.1f,"max_us":%d,"wrapped":%d,"sent":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max, total_wrapped, total_sent))
end
