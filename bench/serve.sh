#!/usr/bin/env bash
# Benchmark: phone files served by `switchback run` against nginx serving the same
# generation from disk (`switchback render --out`), for PHONES phones (default 100,000),
# in four modes, each server loaded in turn by the same wrk load (random phones, half
# Yealink, half SPA):
#
#   (a) HTTP, keep-alive connections;
#   (b) HTTP, a new connection per request (`Connection: close`: what a polling phone does);
#   (c) HTTPS, a new connection per request with TLS session resumption; both servers
#       use the same ECDSA P-256 certificate and key (made here with openssl); nginx
#       with `ssl_session_cache shared:SSL:10m; ssl_session_tickets on;`;
#   (d) HTTPS with credentials, a new connection per fetch and two requests per fetch
#       (without credentials -> 401, then with them -> 200): switchback with
#       `[provisioning] auth = "digest"` (bench/auth_phone.lua computes each answer from
#       the challenge's nonce), nginx with auth_basic and one htpasswd file per phone,
#       the closest nginx equivalent (Debian's nginx has no digest module). Counted in
#       fetches (request pairs) per second for both.
#
#   bench/serve.sh                 # 100,000 phones, 2 threads, 64 connections, 15 s per run
#   PHONES=1000 CONNECTIONS=16 DURATION=5s bench/serve.sh
#   MODES="c d" bench/serve.sh     # only some modes
#   PROFILE="b c d" bench/serve.sh # also `perf record -g` switchback for 10 s in these modes
#   KEEP=1 bench/serve.sh          # keep the work folder (configs, wrk outputs, perf data)
#
# switchback runs as shipped: it records every fetch; nginx runs with its access log off.
# Before the runs it checks that both servers serve the same bytes, and whether wrk's
# HTTPS connections resume their sessions (a short capture of ServerHellos with tcpdump,
# bench/tls_resumption.py). Installs wrk, nginx-light, tcpdump (and linux-perf with
# PROFILE) with apt if missing (not needed by the tests). Prints requests/s and latency
# per run, switchback's memory, and a table at the end; asserts nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

PHONES=${PHONES:-100000}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
MODES=${MODES:-a b c d}
PROFILE=${PROFILE:-}
SB_PORT=${SB_PORT:-18481}
NGINX_PORT=${NGINX_PORT:-18482}
SB_TLS_PORT=${SB_TLS_PORT:-18483}
NGINX_TLS_PORT=${NGINX_TLS_PORT:-18484}
NGINX_AUTH_PORT=${NGINX_AUTH_PORT:-18485}

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
[[ -z $PROFILE ]] || command -v perf >/dev/null 2>&1 || need+=(linux-perf)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release -q -p switchback
work=$(mktemp -d /tmp/switchback-bench-XXXXXX)
chmod 0755 "$work" # nginx's workers run as an unprivileged user
# A copy: a rebuild of the shared target folder during the run cannot swap the binary.
cp target/release/switchback "$work/switchback"
bin=$work/switchback
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT
has_mode() { [[ " $MODES " == *" $1 "* ]]; }
seconds() { # wrk duration (15, 15s, 2m, 1h) -> seconds
  local d=$1
  case $d in
    *h) echo $((${d%h} * 3600)) ;; *m) echo $((${d%m} * 60)) ;; *s) echo "${d%s}" ;; *) echo "$d" ;;
  esac
}

# One certificate and key for both servers: ECDSA P-256, self-signed.
mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -subj /CN=prov.example.net -addext "subjectAltName=DNS:prov.example.net,IP:127.0.0.1" \
  -keyout "$work/tls/key.pem" -out "$work/tls/fullchain.pem" 2>/dev/null
chmod 0644 "$work/tls/key.pem"

# Sites on loopback ports where nothing listens: every probe fails, the monitor counts
# itself blind and moves nothing, so the generation stays put while wrk runs.
write_config() { # file auth
  cat > "$1" <<TOML
[server]
listen = "127.0.0.1:$SB_PORT"
tls_listen = "127.0.0.1:$SB_TLS_PORT"
tls_cert = "$work/tls/fullchain.pem"
tls_key = "$work/tls/key.pem"
public_url = "http://prov.example.net"
[store]
url = "sqlite://$work/switchback.db"
[provisioning]
auth = "$2"
scan_limit = 1000000000
[monitor]
interval = "5m"
timeout = "200ms"
retries = 0
TOML
  offline_sites "$work" >> "$1"
}
write_config "$work/switchback.toml" none
write_config "$work/switchback-digest.toml" digest

# Phone i: MAC 001565 + i in hex, provisioning password prov- + the same hex digits
# (bench/random_phone.lua and bench/auth_phone.lua rely on both).
python3 - "$PHONES" > "$work/phones.csv" <<'PY'
import sys
print("mac,vendor,model,display_name,user_id,auth_id,password,prov_password")
for i in range(int(sys.argv[1])):
    vendor, model = ("yealink", "T46S") if i % 2 == 0 else ("linksys", "SPA504G")
    print(f"001565{i:06x},{vendor},{model},Desk {i},{100000 + i},,pw-{i:06x},prov-{i:06x}")
PY
# nginx's auth_basic counterpart: one htpasswd file per phone ({SSHA}: salted SHA-1), so
# a phone's file opens only with that phone's MAC and password, as with switchback.
htpasswd_pid=
if has_mode d; then
  python3 - "$PHONES" "$work/htpasswd" <<'PY' &
import base64, hashlib, os, sys
folder = sys.argv[2]
os.makedirs(folder)
for i in range(int(sys.argv[1])):
    mac, password, salt = f"001565{i:06x}", f"prov-{i:06x}".encode(), os.urandom(4)
    hashed = base64.b64encode(hashlib.sha1(password + salt).digest() + salt).decode()
    with open(os.path.join(folder, mac), "w") as f:
        f.write(f"{mac}:{{SSHA}}{hashed}\n")
PY
  htpasswd_pid=$!
fi

export SWITCHBACK_LOG=warn
echo "== $PHONES phones"
/usr/bin/time -f "import: %e s, %M KiB max RSS" "$bin" phones import --config "$work/switchback.toml" "$work/phones.csv" >/dev/null
/usr/bin/time -f "render --out: %e s" "$bin" render --config "$work/switchback.toml" --out "$work/prov" >/dev/null
# render writes 0600 files in 0700 folders (they hold SIP passwords); nginx's workers run
# as an unprivileged user, so let them read this copy.
chmod -R go+rX "$work/prov"
[[ -z $htpasswd_pid ]] || wait "$htpasswd_pid"

cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { text/plain cfg; application/xml xml; }
  client_body_temp_path $work/nginx-tmp;
  proxy_temp_path $work/nginx-tmp;
  fastcgi_temp_path $work/nginx-tmp;
  uwsgi_temp_path $work/nginx-tmp;
  scgi_temp_path $work/nginx-tmp;
  ssl_certificate $work/tls/fullchain.pem;
  ssl_certificate_key $work/tls/key.pem;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:10m;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /prov/ { alias $work/prov/; }
  }
  server {
    listen 127.0.0.1:$NGINX_TLS_PORT ssl;
    location /prov/ { alias $work/prov/; }
  }
  server {
    listen 127.0.0.1:$NGINX_AUTH_PORT ssl;
    root $work;
    location ~ "^/prov/yealink/(?<mac>[0-9a-f]{12})\.cfg\$" {
      auth_basic "switchback";
      auth_basic_user_file $work/htpasswd/\$mac;
    }
    location ~ "^/prov/linksys/spa(?<mac>[0-9a-f]{12})\.xml\$" {
      auth_basic "switchback";
      auth_basic_user_file $work/htpasswd/\$mac;
    }
    location / { return 404; }
  }
}
NGINX
mkdir -p "$work/nginx-tmp"

start_switchback() { # config [log filter]
  SWITCHBACK_LOG=${2:-warn} "$bin" run --config "$1" 2>>"$work/switchback.log" &
  sb_pid=$!
  pids+=("$sb_pid")
}
stop_switchback() {
  kill "$sb_pid"
  wait "$sb_pid" || true
}
start_switchback "$work/switchback.toml"
nginx -c "$work/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")

wait_for() { # url [curl options]
  local url=$1
  shift
  for _ in $(seq 1 200); do
    curl -sfk -o /dev/null "$@" "$url" && return 0
    sleep 0.1
  done
  echo "no answer from $url" >&2
  tail -n 5 "$work/nginx-error.log" "$work/switchback.log" >&2 || true
  exit 1
}
probe_path=/prov/yealink/001565000000.cfg
wait_for "http://127.0.0.1:$SB_PORT$probe_path"
wait_for "http://127.0.0.1:$NGINX_PORT$probe_path"
wait_for "https://127.0.0.1:$SB_TLS_PORT$probe_path"
wait_for "https://127.0.0.1:$NGINX_TLS_PORT$probe_path"
same() { cmp -s <(curl -sk $1) <(curl -sk $2); } # "url [curl options]" twice
if same "http://127.0.0.1:$SB_PORT$probe_path" "http://127.0.0.1:$NGINX_PORT$probe_path" &&
  same "https://127.0.0.1:$SB_TLS_PORT$probe_path" "https://127.0.0.1:$NGINX_TLS_PORT$probe_path"; then
  echo "both serve the same bytes over HTTP and HTTPS"
else
  echo "WARNING: switchback and nginx serve different bytes" >&2
fi
rss() { awk '/VmRSS/ {print $2 " KiB"}' "/proc/$sb_pid/status"; }
echo "switchback RSS before load: $(rss)"

# What each TLS server negotiates with an OpenSSL client, and whether it resumes.
tls_check() { # name port
  local name=$1 port=$2 line reused
  line=$(openssl s_client -connect "127.0.0.1:$port" -servername prov.example.net </dev/null 2>/dev/null |
    awk '/^New, / {proto=$2; cipher=$NF} /Server Temp Key/ {sub(/.*Key: /, ""); kx=$0} /Peer signature type/ {sig=$NF}
         END {print proto, cipher, "kx " kx, "sig " sig}')
  # TLS 1.2 session-id/ticket resumption: s_client reconnects 5 times with the session.
  reused=$(openssl s_client -connect "127.0.0.1:$port" -tls1_2 -reconnect </dev/null 2>/dev/null | grep -c '^Reused' || true)
  echo "$name TLS: $line; openssl s_client -tls1_2 -reconnect: $reused of 5 reconnections resumed"
}
# Whether wrk resumes: a short new-connection-per-request run under tcpdump, counting
# full and resumed handshakes in the ServerHellos.
wrk_resumption() { # name port
  local name=$1 port=$2 cap=$work/resume-$1.pcap tpid
  if ! command -v tcpdump >/dev/null 2>&1; then
    echo "$name: tcpdump missing, wrk's resumption not checked"
    return
  fi
  tcpdump -i lo -s 400 -U -w "$cap" "tcp src port $port" 2>"$work/tcpdump-$name.log" &
  tpid=$!
  for _ in $(seq 1 50); do grep -q listening "$work/tcpdump-$name.log" 2>/dev/null && break; sleep 0.1; done
  CLOSE=1 PHONES=$PHONES wrk -t1 -c4 -d2s -s bench/random_phone.lua "https://127.0.0.1:$port" >/dev/null
  sleep 0.3
  kill -INT "$tpid"
  wait "$tpid" 2>/dev/null || true
  echo "$name, wrk with a new connection per request: $(python3 bench/tls_resumption.py "$cap" "$port")"
}
if has_mode c || has_mode d; then
  echo
  tls_check switchback "$SB_TLS_PORT"
  tls_check nginx "$NGINX_TLS_PORT"
  wrk_resumption switchback "$SB_TLS_PORT"
  wrk_resumption nginx "$NGINX_TLS_PORT"
fi

declare -A rate p50 p99 cpu_per others
# CPU time in clock ticks: the whole machine busy, and one process with its children's
# threads (nginx: the master and its workers).
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
proc_ticks() { # pid...
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
server_pids() { # name
  if [[ $1 == switchback ]]; then echo "$sb_pid"; else echo "$nginx_pid" $(pgrep -P "$nginx_pid"); fi
}
# One wrk run; its numbers land in rate/p50/p99[mode,name].
load() { # mode name url script [VAR=value...]
  local mode=$1 name=$2 url=$3 script=$4 out=$work/wrk-$1-$2.txt perf_pid=
  shift 4
  echo
  echo "== ($mode) $name: $url ($THREADS threads, $CONNECTIONS connections, $DURATION${*:+, $*})"
  if [[ $name == switchback && " $PROFILE " == *" $mode "* ]]; then
    local total=$(seconds "$DURATION") length=10
    ((total - 3 < length)) && length=$((total > 4 ? total - 3 : 1))
    (sleep 2 && perf record -q -g -p "$sb_pid" -o "$work/perf-$mode.data" -- sleep "$length" >/dev/null 2>&1) &
    perf_pid=$!
  fi
  local pids_of_server busy0 server0 busy1 server1
  pids_of_server=$(server_pids "$name")
  busy0=$(machine_busy) server0=$(proc_ticks $pids_of_server)
  env "$@" PHONES="$PHONES" /usr/bin/time -f "%U %S" -o "$work/time-$mode-$name.txt" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$script" "$url" > "$out"
  busy1=$(machine_busy) server1=$(proc_ticks $pids_of_server)
  grep -E "Requests/sec|Transfer/sec|50%|99%|Non-2xx|errors|requests in" "$out" | grep -v '^RESULT' || true
  local result
  result=$(grep '^RESULT' "$out")
  echo "${result#RESULT }"
  local -A r
  for kv in ${result#RESULT }; do r[${kv%%=*}]=${kv#*=}; done
  rate[$mode,$name]=$(awk -v n="${r[fetches]}" -v us="${r[duration_us]}" 'BEGIN {printf "%.0f", n / (us / 1e6)}')
  # Where the CPU went: the server, wrk, and everything else (the machine is shared).
  local hz cpu_line
  hz=$(getconf CLK_TCK)
  cpu_line=$(awk -v b="$((busy1 - busy0))" -v s="$((server1 - server0))" -v hz="$hz" -v n="${r[fetches]}" \
    -v us="${r[duration_us]}" -v cores="$(nproc)" -v w="$(cat "$work/time-$mode-$name.txt")" 'BEGIN {
      split(w, t, " "); wrk = t[1] + t[2]; server = s / hz; other = b / hz - server - wrk; if (other < 0) other = 0
      printf "%.0f %.1f|CPU: %s %.1f s, wrk %.1f s, everything else %.1f s, of %.1f s (%d cores); %s CPU per %s: %.0f us",
        server / n * 1e6, other, "'"$name"'", server, wrk, other, cores * us / 1e6, cores, "'"$name"'",
        ("'"$mode"'" == "d" ? "fetch" : "request"), server / n * 1e6 }')
  echo "${cpu_line#*|}"
  cpu_line=${cpu_line%%|*}
  cpu_per[$mode,$name]=${cpu_line% *}
  others[$mode,$name]=${cpu_line#* }
  p50[$mode,$name]=$(awk -v us="${r[p50_us]}" 'BEGIN {printf "%.2f", us / 1000}')
  p99[$mode,$name]=$(awk -v us="${r[p99_us]}" 'BEGIN {printf "%.2f", us / 1000}')
  if ((${r[non_2xx]:-0} + ${r[got_other]:-0} + ${r[refused_answers]:-0} + ${r[connect_errors]:-0})); then
    echo "WARNING: ($mode) $name had refused requests or connection errors (see above)" >&2
  fi
  [[ $name == switchback ]] && echo "switchback RSS after this run: $(rss)"
  if [[ -n $perf_pid ]]; then
    wait "$perf_pid" || true
    { # CPU per thread (the fetch flush runs on the SQLite worker), then by function.
      perf report --no-children --stdio -g none --sort comm -i "$work/perf-$mode.data" 2>/dev/null | grep -v '^#' | grep -v '^$'
      perf report --no-children --stdio -g none --sort comm,dso,sym -i "$work/perf-$mode.data" 2>/dev/null |
        grep -v '^#' | grep -v '^$' | cut -c1-160 | head -50
    } > "$work/perf-$mode.txt" || true
  fi
  return 0
}

if has_mode a; then
  load a switchback "http://127.0.0.1:$SB_PORT" bench/random_phone.lua
  load a nginx "http://127.0.0.1:$NGINX_PORT" bench/random_phone.lua
fi
if has_mode b; then
  load b switchback "http://127.0.0.1:$SB_PORT" bench/random_phone.lua CLOSE=1
  load b nginx "http://127.0.0.1:$NGINX_PORT" bench/random_phone.lua CLOSE=1
fi
if has_mode c; then
  load c switchback "https://127.0.0.1:$SB_TLS_PORT" bench/random_phone.lua CLOSE=1
  load c nginx "https://127.0.0.1:$NGINX_TLS_PORT" bench/random_phone.lua CLOSE=1
fi
if has_mode d; then
  # The same store, restarted with `auth = "digest"`; refused answers would be logged.
  stop_switchback
  start_switchback "$work/switchback-digest.toml" "warn,switchback_server::prov=debug"
  wait_for "https://127.0.0.1:$SB_TLS_PORT$probe_path" --digest -u "001565000000:prov-000000"
  if same "https://127.0.0.1:$SB_TLS_PORT$probe_path --digest -u 001565000000:prov-000000" \
    "https://127.0.0.1:$NGINX_AUTH_PORT$probe_path -u 001565000000:prov-000000"; then
    echo "both serve the same bytes with credentials (curl: digest for switchback, basic for nginx)"
  fi
  refused_before=$(grep -c "credentials refused" "$work/switchback.log" || true)
  load d switchback "https://127.0.0.1:$SB_TLS_PORT" bench/auth_phone.lua AUTH=digest
  load d nginx "https://127.0.0.1:$NGINX_AUTH_PORT" bench/auth_phone.lua AUTH=basic
  refused=$(($(grep -c "credentials refused" "$work/switchback.log" || true) - refused_before))
  echo "switchback refused $refused digest answers during (d)"
fi

label() { # mode [unit]
  case $1 in
    a) echo "(a) HTTP keep-alive${2:+, req/s}" ;;
    b) echo "(b) HTTP new conn/request${2:+, req/s}" ;;
    c) echo "(c) HTTPS new conn/req, resumed${2:+, req/s}" ;;
    d) echo "(d) HTTPS + auth, 2 req/fetch${2:+, fetches/s}" ;;
  esac
}
echo
echo "== $PHONES phones, $THREADS wrk threads, $CONNECTIONS connections, $DURATION per run, $(nproc) cores shared with wrk"
printf '%-42s %11s %9s %6s %9s %9s %9s %9s\n' mode switchback nginx ratio "sb p50" "sb p99" "ngx p50" "ngx p99"
for mode in a b c d; do
  has_mode "$mode" || continue
  sb=${rate[$mode,switchback]} ng=${rate[$mode,nginx]}
  printf '%-42s %11s %9s %6s %9s %9s %9s %9s\n' "$(label "$mode" unit)" "$sb" "$ng" \
    "$(awk -v a="$sb" -v b="$ng" 'BEGIN {printf "%.2f", b ? a / b : 0}')" \
    "${p50[$mode,switchback]}ms" "${p99[$mode,switchback]}ms" "${p50[$mode,nginx]}ms" "${p99[$mode,nginx]}ms"
done
echo "Latency is wrk's, per request: from writing the request to the whole response, so in"
echo "(b)-(d) it leaves out the TCP connect and TLS handshake wrk does before writing; in (d)"
echo "it mixes the 401 and the 200 of each fetch. (d) for nginx is HTTPS + auth_basic (one"
echo "htpasswd file per phone), the closest nginx equivalent of digest: same two requests."
echo "In (c) and (d) wrk's OpenSSL client needs more CPU per connection than either server (the"
echo "CPU: lines above), so their rates are bounded by the client; the CPU table below compares"
echo "what each server spends per request."
echo
echo "Server CPU per request ((d): per fetch, both requests), from /proc; and the CPU that"
echo "everything else took during the run (other processes, interrupts: the machine is shared)."
printf '%-42s %11s %9s %6s %16s\n' "mode, CPU per request" "switchback" nginx ratio "else sb/ngx"
for mode in a b c d; do
  has_mode "$mode" || continue
  sb=${cpu_per[$mode,switchback]} ng=${cpu_per[$mode,nginx]}
  printf '%-42s %9sus %7sus %6s %16s%s\n' "$(label "$mode")" "$sb" "$ng" \
    "$(awk -v a="$sb" -v b="$ng" 'BEGIN {printf "%.2f", b ? a / b : 0}')" "${others[$mode,switchback]}s/${others[$mode,nginx]}s" \
    "$(awk -v a="${others[$mode,switchback]}" -v b="${others[$mode,nginx]}" -v cap="$(($(nproc) * $(seconds "$DURATION")))" \
      'BEGIN {if (a > cap / 5 || b > cap / 5) printf "  noisy"}')"
done | tee "$work/cpu-table.txt"
if grep -q noisy "$work/cpu-table.txt"; then
  echo "(noisy: something else took more than a fifth of the machine during that mode's runs)"
fi
echo
echo "Mean time per request ((d): per fetch) with its connection, TCP connect and TLS handshake"
echo "included (connections / rate, the load being closed-loop):"
for mode in b c d; do
  has_mode "$mode" || continue
  printf '%-42s %9s ms %9s ms\n' "$(label "$mode")" \
    "$(awk -v c="$CONNECTIONS" -v r="${rate[$mode,switchback]}" 'BEGIN {printf "%.2f", r ? c / r * 1000 : 0}')" \
    "$(awk -v c="$CONNECTIONS" -v r="${rate[$mode,nginx]}" 'BEGIN {printf "%.2f", r ? c / r * 1000 : 0}')"
done
for mode in $PROFILE; do
  [[ -s $work/perf-$mode.txt ]] || continue
  echo
  echo "== perf: switchback under ($mode): perf record -g, perf report --no-children (by thread, then top functions)"
  cat "$work/perf-$mode.txt"
done
