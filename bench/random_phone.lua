-- wrk script: each request asks for a random phone's file, half Yealink, half SPA,
-- from the inventory bench/serve.sh generates (MAC 001565 + the phone's index in hex).
--
-- CLOSE=1 sends `Connection: close` with every request, so each request has its own
-- connection (and, over HTTPS, its own TLS handshake), as a polling phone does. It has
-- to be set here: wrk.format with a header table drops the headers given with -H.
-- done() prints one `RESULT` line that bench/serve.sh parses.
local phones = tonumber(os.getenv("PHONES") or "100000")
local close = os.getenv("CLOSE") == "1"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local i = math.random(0, phones - 1)
  local mac = string.format("001565%06x", i)
  local headers
  if i % 2 == 0 then
    headers = { ["User-Agent"] = "Yealink SIP-T46S 66.86.0.15" }
  else
    headers = { ["User-Agent"] = "Cisco/SPA504G-7.6.2" }
  end
  if close then
    headers["Connection"] = "close"
  end
  if i % 2 == 0 then
    return wrk.format("GET", "/prov/yealink/" .. mac .. ".cfg", headers)
  end
  return wrk.format("GET", "/prov/linksys/spa" .. mac .. ".xml", headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d fetches=%d p50_us=%d p99_us=%d non_2xx=%d connect_errors=%d "
      .. "read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, summary.requests - e.status, latency:percentile(50),
    latency:percentile(99), e.status, e.connect, e.read, e.write, e.timeout))
end
