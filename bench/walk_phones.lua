-- wrk script for bench/dashboard.sh: fetches the files of nine phones in ten, in turn
-- (phone i for every i with i % 10 ~= 0, the inventory bench/serve.sh and
-- bench/dashboard.sh generate: MAC 001565 + i in hex), so that the store holds fetch
-- records and one phone in ten stays never seen (stale). Each thread takes every
-- THREADS-th of them and starts over at the end, so a run long enough fetches them all.
local phones = tonumber(os.getenv("PHONES") or "100000")
local threads = tonumber(os.getenv("THREADS") or "2")
local fresh = phones - math.floor((phones + 9) / 10)
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

function init(args)
  n = 0
end

function request()
  local k = (n * threads + id) % fresh
  n = n + 1
  local i = math.floor(k / 9) * 10 + k % 9 + 1
  local mac = string.format("001565%06x", i)
  if i % 2 == 0 then
    return wrk.format("GET", "/prov/yealink/" .. mac .. ".cfg", { ["User-Agent"] = "Yealink SIP-T46S 66.86.0.15" })
  end
  return wrk.format("GET", "/prov/linksys/spa" .. mac .. ".xml", { ["User-Agent"] = "Cisco/SPA504G-7.6.2" })
end
