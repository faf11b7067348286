-- wrk script: phones fetching their files with credentials, as a polling phone does:
-- a fetch is a request without credentials (answered 401 with a challenge), then the
-- same request with credentials (answered 200), on one connection that the second
-- request closes (`Connection: close`), so every fetch pays a connection and, over
-- HTTPS, a (resumed) TLS handshake.
--
--   AUTH=digest  switchback's `[provisioning] auth = "digest"` (RFC 7616): the answer is
--                computed per request from a challenge's nonce with the MD5 below
--                (wrk's LuaJIT has no hash functions), username = the MAC, password =
--                the phone's prov_password, qop=auth, a fresh cnonce and nc=00000001:
--                every nonce answers exactly one fetch (a fresh challenge per fetch),
--                so no nonce count is ever repeated whatever order requests arrive in.
--   AUTH=basic   nginx's auth_basic (Debian's nginx has no digest module): the closest
--                equivalent, same two requests, `Authorization: Basic base64(mac:pw)`.
--
-- wrk's Lua does not say which connection a request() or response() belongs to, so a
-- challenge's nonce cannot be tied to its own connection. Instead each thread keeps the
-- challenges it received in a queue: request() sends an answer (using the oldest
-- unanswered challenge) when there is one, otherwise a new fetch's first request. A
-- connection that just got its 401 is the next one wrk asks for a request almost
-- always, so fetches are nearly always challenge + answer on one connection; either
-- way every connection ends with exactly one answer, every challenge is answered once,
-- and the server does the same work per fetch: one TLS handshake, one challenge, one
-- verification, one file. Which phone a request asks for is random each time (the
-- server does not tie a nonce to a phone).
--
-- The inventory is the one bench/serve.sh generates: MAC 001565 + the phone's index in
-- hex (even index Yealink, odd SPA), prov_password "prov-" + the same 6 hex digits.
-- done() prints one `RESULT` line that bench/serve.sh parses.

local bit = require("bit")
local ffi = require("ffi")
local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local lshift, rshift, rol, tobit, tohex, bswap = bit.lshift, bit.rshift, bit.rol, bit.tobit, bit.tohex, bit.bswap

local phones = tonumber(os.getenv("PHONES") or "100000")
local auth = os.getenv("AUTH") or "digest"
local realm = "switchback"

---------------------------------------------------------------------------- MD5 (RFC 1321)

local K, S = {}, {}
for i = 0, 63 do
  K[i] = tobit(math.floor(math.abs(math.sin(i + 1)) * 2 ^ 32))
end
do
  local shifts = { { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 } }
  for i = 0, 63 do
    S[i] = shifts[math.floor(i / 16) + 1][i % 4 + 1]
  end
end

-- The message goes into a preallocated buffer read as little-endian 32-bit words (FFI,
-- part of LuaJIT; x86 and ARM are little-endian): no strings are built per block.
local MAX_MESSAGE = 2048
local buf = ffi.new("uint8_t[?]", MAX_MESSAGE + 72)
local words = ffi.cast("int32_t *", buf)

local function md5_hex(message)
  local len = #message
  assert(len <= MAX_MESSAGE, "md5_hex: message too long")
  local total = (math.floor((len + 8) / 64) + 1) * 64
  ffi.copy(buf, message, len)
  buf[len] = 0x80
  ffi.fill(buf + len + 1, total - len - 1)
  words[total / 4 - 2] = tobit(len * 8)
  local a0, b0, c0, d0 = tobit(0x67452301), tobit(0xefcdab89), tobit(0x98badcfe), tobit(0x10325476)
  for chunk = 0, total / 4 - 1, 16 do
    local a, b, c, d = a0, b0, c0, d0
    for i = 0, 63 do
      local f, g
      if i < 16 then
        f, g = bor(band(b, c), band(bnot(b), d)), i
      elseif i < 32 then
        f, g = bor(band(d, b), band(bnot(d), c)), (5 * i + 1) % 16
      elseif i < 48 then
        f, g = bxor(b, c, d), (3 * i + 5) % 16
      else
        f, g = bxor(c, bor(b, bnot(d))), (7 * i) % 16
      end
      a, d, c, b = d, c, b, tobit(b + rol(tobit(a + f + K[i] + words[chunk + g]), S[i]))
    end
    a0, b0, c0, d0 = tobit(a0 + a), tobit(b0 + b), tobit(c0 + c), tobit(d0 + d)
  end
  return tohex(bswap(a0)) .. tohex(bswap(b0)) .. tohex(bswap(c0)) .. tohex(bswap(d0))
end

---------------------------------------------------------------------------- base64

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(text)
  local out = {}
  for i = 1, #text, 3 do
    local x, y, z = string.byte(text, i, i + 2)
    local n = x * 65536 + (y or 0) * 256 + (z or 0)
    local c1, c2 = rshift(n, 18), band(rshift(n, 12), 63)
    local c3, c4 = band(rshift(n, 6), 63), band(n, 63)
    out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1)
      .. (y and B64:sub(c3 + 1, c3 + 1) or "=") .. (z and B64:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

---------------------------------------------------------------------------- the load

-- Per thread (each wrk thread has its own Lua state); globals so done() can read them.
challenges_sent, answers_sent = 0, 0
got_challenged, got_file, got_other = 0, 0, 0

local queue, head, tail = {}, 1, 0 -- challenges received, not yet answered

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  if os.getenv("MD5_SELFTEST") then
    assert(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e")
    assert(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72")
    assert(md5_hex(string.rep("1234567890", 8)) == "57edf4a22be3c955ac49da2e2107b67a")
    assert(base64("Aladdin:open sesame") == "QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
  end
end

local function phone()
  local i = math.random(0, phones - 1)
  local hex = string.format("%06x", i)
  local mac = "001565" .. hex
  if i % 2 == 0 then
    return mac, "prov-" .. hex, "/prov/yealink/" .. mac .. ".cfg", "Yealink SIP-T46S 66.86.0.15"
  end
  return mac, "prov-" .. hex, "/prov/linksys/spa" .. mac .. ".xml", "Cisco/SPA504G-7.6.2"
end

local function cnonce()
  return string.format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
end

function request()
  local mac, password, path, agent = phone()
  if head > tail then
    -- A new fetch: no credentials yet (the phone learns the nonce from the 401).
    challenges_sent = challenges_sent + 1
    return wrk.format("GET", path, { ["User-Agent"] = agent })
  end
  local nonce = queue[head]
  queue[head] = nil
  head = head + 1
  answers_sent = answers_sent + 1
  local authorization
  if auth == "digest" then
    local nc, cn = "00000001", cnonce()
    local ha1 = md5_hex(mac .. ":" .. realm .. ":" .. password)
    local ha2 = md5_hex("GET:" .. path)
    local response = md5_hex(ha1 .. ":" .. nonce .. ":" .. nc .. ":" .. cn .. ":auth:" .. ha2)
    authorization = string.format(
      'Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=MD5, qop=auth, nc=%s, cnonce="%s", response="%s"',
      mac, realm, nonce, path, nc, cn, response)
  else
    authorization = "Basic " .. base64(mac .. ":" .. password)
  end
  return wrk.format("GET", path, {
    ["User-Agent"] = agent,
    ["Authorization"] = authorization,
    ["Connection"] = "close",
  })
end

function response(status, headers, body)
  if status == 200 then
    got_file = got_file + 1
  elseif status == 401 then
    got_challenged = got_challenged + 1
    local nonce = true -- Basic: any 401 is the cue to answer
    if auth == "digest" then
      nonce = nil
      for name, value in pairs(headers) do
        if name:lower() == "www-authenticate" then
          nonce = value:match('nonce="([^"]+)"')
        end
      end
    end
    if nonce then
      tail = tail + 1
      queue[tail] = nonce
    end
  else
    got_other = got_other + 1
  end
end

---------------------------------------------------------------------------- the report

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local t = { challenges_sent = 0, answers_sent = 0, got_challenged = 0, got_file = 0, got_other = 0 }
  for _, thread in ipairs(threads) do
    for name in pairs(t) do
      t[name] = t[name] + (thread:get(name) or 0)
    end
  end
  local e = summary.errors
  -- A refused answer would be a 401 beyond the challenges asked for; answers still in
  -- flight when wrk stopped (at most one per connection) are not refusals.
  local refused = math.max(0, t.got_challenged - t.challenges_sent)
  io.write(string.format(
    "RESULT requests=%d duration_us=%d fetches=%d p50_us=%d p99_us=%d challenges_sent=%d answers_sent=%d "
      .. "got_401=%d got_200=%d got_other=%d refused_answers=%d connect_errors=%d read_errors=%d "
      .. "write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, t.got_file, latency:percentile(50), latency:percentile(99),
    t.challenges_sent, t.answers_sent, t.got_challenged, t.got_file, t.got_other, refused,
    e.connect, e.read, e.write, e.timeout))
end
