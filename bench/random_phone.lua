-- wrk script: each request asks for a random phone's file, half Yealink, half SPA,
-- from the inventory bench/serve.sh generates (MAC 001565 + the phone's index in hex).
local phones = tonumber(os.getenv("PHONES") or "100000")

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local i = math.random(0, phones - 1)
  local mac = string.format("001565%06x", i)
  if i % 2 == 0 then
    return wrk.format("GET", "/prov/yealink/" .. mac .. ".cfg", { ["User-Agent"] = "Yealink SIP-T46S 66.86.0.15" })
  end
  return wrk.format("GET", "/prov/linksys/spa" .. mac .. ".xml", { ["User-Agent"] = "Cisco/SPA504G-7.6.2" })
end
