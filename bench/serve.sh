#!/usr/bin/env bash
# Benchmark: phone files served by `switchback run` against nginx serving the same
# generation from disk (`switchback render --out`), for PHONES phones (default 100,000).
# Both get the same wrk load: random phones, half Yealink, half SPA, keep-alive.
#
#   bench/serve.sh                 # 100,000 phones, 64 connections, 15 s per server
#   PHONES=1000 CONNECTIONS=16 DURATION=5s bench/serve.sh
#
# Installs wrk and nginx-light with apt if missing (not needed by the tests). Prints
# requests/s, latency and switchback's memory; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PHONES=${PHONES:-100000}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
SB_PORT=${SB_PORT:-18481}
NGINX_PORT=${NGINX_PORT:-18482}

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release -q -p switchback
bin=$PWD/target/release/switchback
work=$(mktemp -d /tmp/switchback-bench-XXXXXX)
chmod 0755 "$work" # nginx's workers run as an unprivileged user
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

# Sites on loopback ports where nothing listens: every probe fails, the monitor counts
# itself blind and moves nothing, so the generation stays put while wrk runs.
cat > "$work/switchback.toml" <<TOML
[server]
listen = "127.0.0.1:$SB_PORT"
public_url = "http://prov.example.net"
[store]
url = "sqlite://$work/switchback.db"
[monitor]
interval = "5m"
timeout = "200ms"
retries = 0
[[sites]]
name = "chicago"
role = "primary"
softswitch = { host = "127.0.0.1", port = 9 }
database = { url = "sqlite://$work/chicago.db" }
stun = { host = "127.0.0.1", port = 9 }
[[sites]]
name = "virginia"
role = "backup"
softswitch = { host = "127.0.0.1", port = 9 }
database = { url = "sqlite://$work/virginia.db" }
stun = { host = "127.0.0.1", port = 9 }
TOML

python3 - "$PHONES" > "$work/phones.csv" <<'PY'
import sys
print("mac,vendor,model,display_name,user_id,auth_id,password")
for i in range(int(sys.argv[1])):
    vendor, model = ("yealink", "T46S") if i % 2 == 0 else ("linksys", "SPA504G")
    print(f"001565{i:06x},{vendor},{model},Desk {i},{100000 + i},,pw-{i:06x}")
PY

export SWITCHBACK_LOG=warn
echo "== $PHONES phones"
/usr/bin/time -f "import: %e s, %M KiB max RSS" "$bin" phones import --config "$work/switchback.toml" "$work/phones.csv" >/dev/null
/usr/bin/time -f "render --out: %e s" "$bin" render --config "$work/switchback.toml" --out "$work/prov" >/dev/null

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
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /prov/ { alias $work/prov/; }
  }
}
NGINX
mkdir -p "$work/nginx-tmp"

"$bin" run --config "$work/switchback.toml" 2>"$work/switchback.log" &
pids+=($!)
sb_pid=$!
nginx -c "$work/nginx.conf" &
pids+=($!)

wait_for() { # url
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  tail -n 5 "$work/nginx-error.log" "$work/switchback.log" >&2 || true
  exit 1
}
probe_path=/prov/yealink/001565000000.cfg
wait_for "http://127.0.0.1:$SB_PORT$probe_path"
wait_for "http://127.0.0.1:$NGINX_PORT$probe_path"
cmp <(curl -s "http://127.0.0.1:$SB_PORT$probe_path") <(curl -s "http://127.0.0.1:$NGINX_PORT$probe_path") \
  && echo "both serve the same bytes"
rss() { awk '/VmRSS/ {print $2 " KiB"}' "/proc/$sb_pid/status"; }
echo "switchback RSS before load: $(rss)"

# switchback twice, around nginx: the second run shows whether memory keeps growing.
for target in "switchback:$SB_PORT" "nginx:$NGINX_PORT" "switchback:$SB_PORT"; do
  name=${target%%:*}
  port=${target##*:}
  echo
  echo "== $name ($THREADS threads, $CONNECTIONS connections, $DURATION)"
  PHONES=$PHONES wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s bench/random_phone.lua "http://127.0.0.1:$port" | grep -E "Requests/sec|Transfer/sec|50%|99%|Non-2xx|errors|requests in"
  [[ $name == switchback ]] && echo "switchback RSS after this run: $(rss)"
done
