-- wrk script: get a session cookie with a warm-up request that writes, then load one path
-- with that cookie. Usage: wrk -s session.lua URL -- /read /write
-- Each wrk thread keeps its own cookie and, like a browser, takes every Set-Cookie it gets
-- (signed-cookie sessions carry their data in it). done() prints one JSON line for run.py.
-- request() and response() run per thread and cannot tell its connections apart, so with
-- wrk -t2 -c8 each thread is one browser with one session and 4 connections sending its
-- requests concurrently; until its first answer arrives, each connection sends the warm-up
-- request without a cookie (a run creates up to -c sessions; the thread keeps the last cookie).

local path, warm = "/read", "/write"
local warmed = false
local cookie = nil
local req = nil

function init(args)
  path = args[1] or path
  warm = args[2] or warm
end

local function build()
  if cookie then
    req = wrk.format("GET", path, { ["Cookie"] = cookie })
  else
    req = wrk.format("GET", path)
  end
end

function request()
  if not warmed then
    return wrk.format("GET", warm)
  end
  return req
end

function response(status, headers, body)
  local sc = headers["Set-Cookie"] or headers["set-cookie"]
  if sc then
    local value = string.match(sc, "^([^;]*)")
    -- a deletion (empty value or Max-Age=0) drops the cookie, as a browser would
    if string.find(sc, "Max-Age=0", 1, true) or string.match(value, "=$") or string.match(value, '=""$') then
      value = nil
    end
    if value ~= cookie then
      cookie = value
      build()
    end
  end
  if not warmed then
    warmed = true
    build()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
