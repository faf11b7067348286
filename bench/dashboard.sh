#!/usr/bin/env bash
# Benchmark: what the ops dashboard costs `switchback run` with PHONES phones (default
# 100,000), on SQLite and on PostgreSQL (a fresh database on the machine's server):
#
#   (1) latency of `GET /api/status` and of `GET /api/phones?stale=true&limit=50` (the
#       dashboard's stale-phone list, with the admin token), CLIENTS (20) wrk
#       connections each, keep-alive, DURATION (15 s) per run;
#   (2) CPU of CLIENTS open dashboards: CLIENTS loops that ask for `/api/status` and wait
#       2 s after each answer, as dashboard.js does while its stream is down, for WINDOW
#       (60) seconds; then the same with the stale list every fifth round, as a logged-in
#       page asks for it while phones are stale; switchback's CPU seconds (user + system,
#       /proc/<pid>/stat) over each window, next to an idle window of the same length;
#       with PostgreSQL, also the CPU of its server processes, where the queries run;
#   (3) CPU of CLIENTS open `GET /api/stream` (server-sent events) held for WINDOW
#       seconds, when the binary has that route; otherwise the row says so.
#
# Before measuring, nine phones in ten fetch their files (bench/walk_phones.lua), and the
# script waits until those fetches are flushed to the store, so the stale list filters a
# realistic inventory: one phone in ten never seen, spread over the MAC order.
#
#   bench/dashboard.sh                          # both backends, 100,000 phones
#   BACKENDS=sqlite PHONES=10000 WINDOW=20 bench/dashboard.sh
#   SWITCHBACK_BIN=/path/to/switchback bench/dashboard.sh   # another build (no cargo build)
#   PG_ADMIN=postgres://user@host:5432/postgres bench/dashboard.sh
#   WINDOW=0 bench/dashboard.sh                 # latency only, no CPU windows
#   KEEP=1 bench/dashboard.sh                   # keep the work folder
#
# The sites point at a loopback port where nothing listens, with interval and
# recheck_interval of 1h: the monitor is blind from its first round on and then quiet.
# Installs wrk (and postgresql-client for psql) with apt if missing. Prints a table at
# the end; asserts nothing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

PHONES=${PHONES:-100000}
CLIENTS=${CLIENTS:-20}
THREADS=${THREADS:-2}
DURATION=${DURATION:-15s}
WINDOW=${WINDOW:-60}
BACKENDS=${BACKENDS:-sqlite postgres}
SB_PORT=${SB_PORT:-18491}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
TOKEN=bench-admin-token-0123456789

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
[[ " $BACKENDS " != *" postgres "* ]] || command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/switchback-dashboard-XXXXXX)
if [[ -n ${SWITCHBACK_BIN:-} ]]; then
  cp "$SWITCHBACK_BIN" "$work/switchback"
else
  cargo build --release -q -p switchback
  # A copy: a rebuild of the shared target folder during the run cannot swap the binary.
  cp target/release/switchback "$work/switchback"
fi
bin=$work/switchback
pids=()
pg_db=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -z $pg_db ]] || psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT
base=http://127.0.0.1:$SB_PORT
auth=(-H "Authorization: Bearer $TOKEN")

write_config() { # file store_url
  cat > "$1" <<TOML
[server]
listen = "127.0.0.1:$SB_PORT"
public_url = "http://prov.example.net"
admin_token = "$TOKEN"
[store]
url = "$2"
[provisioning]
scan_limit = 1000000000
[monitor]
interval = "1h"
recheck_interval = "1h"
timeout = "200ms"
retries = 0
TOML
  offline_sites "$work" >> "$1"
}

# Phone i: MAC 001565 + i in hex, as bench/serve.sh (bench/walk_phones.lua relies on it).
python3 - "$PHONES" > "$work/phones.csv" <<'PY'
import sys
print("mac,vendor,model,display_name,user_id,auth_id,password")
for i in range(int(sys.argv[1])):
    vendor, model = ("yealink", "T46S") if i % 2 == 0 else ("linksys", "SPA504G")
    print(f"001565{i:06x},{vendor},{model},Desk {i},{100000 + i},,pw-{i:06x}")
PY
fresh_expected=$((PHONES - (PHONES + 9) / 10))

hz=$(getconf CLK_TCK)
cpu_seconds() { awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$sb_pid/stat"; }
# CPU seconds of the machine's PostgreSQL: its processes, and (in the postmaster's
# children times) the backends and parallel workers that ended. The server may also be
# serving someone else's tests: read this row as an upper bound.
pg_seconds() {
  local pid total=0 postmaster
  postmaster=$(pgrep -o -x postgres || true)
  for pid in $(pgrep -x postgres); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  [[ -z $postmaster ]] || total=$((total + $(awk '{print $16 + $17}' "/proc/$postmaster/stat" 2>/dev/null || echo 0)))
  awk -v t="$total" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}'
}
# CPU seconds switchback spends while "$@" runs; with the postgres backend, the
# database's CPU over the same time goes to pg_cpu (its queries run there, not in
# switchback).
pg_cpu=
cpu_during() {
  local before after pg_before
  pg_cpu=
  [[ $backend != postgres ]] || pg_before=$(pg_seconds)
  before=$(cpu_seconds)
  "$@"
  after=$(cpu_seconds)
  [[ $backend != postgres ]] || pg_cpu=$(awk -v a="$pg_before" -v b="$(pg_seconds)" 'BEGIN {printf "%.2f", b - a}')
  awk -v a="$before" -v b="$after" 'BEGIN {printf "%.2f", b - a}'
}
# CLIENTS dashboards for WINDOW s: each asks for the status, then waits 2 s, as
# dashboard.js does while its stream is down; with `list`, every fifth round also asks
# for the stale list, as a logged-in page does while phones are stale (every 10 s, sooner
# when the count moves). Started at random moments within a second, as pages opened by
# people are.
dashboards() { # [list]
  local loops=() i
  for ((i = 0; i < CLIENTS; i++)); do
    (
      sleep "0.$((RANDOM % 10))"
      end=$((SECONDS + WINDOW)) round=$((RANDOM % 5))
      while ((SECONDS < end)); do
        if [[ ${1:-} == list ]] && ((round % 5 == 0)); then
          curl -s -o /dev/null -o /dev/null "${auth[@]}" "$base/api/status" "$base/api/phones?stale=true&limit=50" || true
        else
          curl -s -o /dev/null "$base/api/status" || true
        fi
        round=$((round + 1))
        sleep 2
      done
    ) &
    loops+=($!)
  done
  wait "${loops[@]}"
}
# CLIENTS server-sent event streams held open for WINDOW s.
streams() {
  local loops=() i
  for ((i = 0; i < CLIENTS; i++)); do
    curl -s -N -o /dev/null --max-time "$WINDOW" "$base/api/stream" &
    loops+=($!)
  done
  wait "${loops[@]}" || true
}

declare -A result
# One wrk run of CLIENTS connections on one path; p50/p99 (ms) and req/s into result[].
latency() { # backend key path [curl/wrk header options]
  local backend=$1 key=$2 path=$3 out
  shift 3
  out=$work/wrk-$backend-$key.txt
  # A long timeout: wrk counts a slower answer as an error and leaves it out of the latencies.
  wrk -t"$THREADS" -c"$CLIENTS" -d"$DURATION" --timeout 60s --latency -s bench/api_get.lua "$@" "$base$path" > "$out"
  local line
  line=$(grep '^RESULT' "$out")
  local -A r
  for kv in ${line#RESULT }; do r[${kv%%=*}]=${kv#*=}; done
  result[$backend,$key,p50]=$(awk -v us="${r[p50_us]}" 'BEGIN {printf "%.1f", us / 1000}')
  result[$backend,$key,p99]=$(awk -v us="${r[p99_us]}" 'BEGIN {printf "%.1f", us / 1000}')
  result[$backend,$key,rate]=$(awk -v n="${r[requests]}" -v us="${r[duration_us]}" 'BEGIN {printf "%.0f", n / (us / 1e6)}')
  echo "$path: p50 ${result[$backend,$key,p50]} ms, p99 ${result[$backend,$key,p99]} ms, ${result[$backend,$key,rate]} req/s"
  if ((r[non_2xx] + r[connect_errors] + r[read_errors] + r[timeouts])); then
    echo "WARNING: $path: ${r[non_2xx]} non-2xx answers, errors: $line" >&2
  fi
}

run_backend() { # backend
  local backend=$1 store_url
  case $backend in
    sqlite) store_url="sqlite://$work/switchback.db" ;;
    postgres)
      pg_db=sbbench_$$
      psql -q "$PG_ADMIN" -c "CREATE DATABASE $pg_db" >/dev/null
      store_url="${PG_ADMIN%/*}/$pg_db"
      ;;
    *) echo "unknown backend $backend" >&2 && exit 2 ;;
  esac
  echo
  echo "== $backend: $PHONES phones"
  write_config "$work/$backend.toml" "$store_url"
  export SWITCHBACK_LOG=warn
  /usr/bin/time -f "import: %e s" "$bin" phones import --config "$work/$backend.toml" "$work/phones.csv" >/dev/null
  "$bin" run --config "$work/$backend.toml" 2>>"$work/switchback-$backend.log" &
  sb_pid=$!
  pids+=("$sb_pid")
  # Ready once the generation holds the whole inventory (asking for a phone file here
  # would count as that phone's fetch).
  for _ in $(seq 1 600); do
    curl -sf "$base/readyz" 2>/dev/null | grep -q "($PHONES phones)" && break
    sleep 0.1
  done
  curl -sf "$base/readyz" | grep -q "($PHONES phones)" || { tail -n 20 "$work/switchback-$backend.log" >&2; exit 1; }

  # Nine phones in ten fetch their files; wait for the flush to reach the store.
  local walk
  walk=$(awk -v n="$fresh_expected" 'BEGIN {printf "%d", n / 5000 + 3}')
  PHONES=$PHONES THREADS=$THREADS wrk -t"$THREADS" -c16 -d"${walk}s" -s bench/walk_phones.lua "$base" |
    grep -E "requests in|Requests/sec" || true
  local fresh=0
  for _ in $(seq 1 300); do
    fresh=$(curl -sf "${auth[@]}" "$base/api/phones?stale=false&limit=1" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])' || echo 0)
    ((fresh >= fresh_expected)) && break
    sleep 0.2
  done
  result[$backend,fresh]=$fresh
  local page
  page=$(curl -sf "${auth[@]}" "$base/api/phones?stale=true&limit=50")
  result[$backend,stale]=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])' <<<"$page")
  if grep -q '"pw-' <<<"$page"; then echo "WARNING: /api/phones shows a password" >&2; fi
  echo "phones seen: $fresh of $fresh_expected expected; stale: ${result[$backend,stale]}"

  latency "$backend" status /api/status
  latency "$backend" phones "/api/phones?stale=true&limit=50" "${auth[@]}"

  if ((WINDOW == 0)); then
    for key in idle dashboards listing streams; do result[$backend,$key]="n/a"; done
    kill "$sb_pid"
    wait "$sb_pid" || true
    return
  fi
  echo "idle for ${WINDOW} s, then $CLIENTS dashboards polling /api/status every 2 s for ${WINDOW} s"
  cpu_during sleep "$WINDOW" > "$work/cpu"
  result[$backend,idle]=$(cat "$work/cpu") result[$backend,idle_pg]=$pg_cpu
  cpu_during dashboards > "$work/cpu"
  result[$backend,dashboards]=$(cat "$work/cpu") result[$backend,dashboards_pg]=$pg_cpu
  echo "$CLIENTS logged-in dashboards, the stale list every 10 s too, for ${WINDOW} s"
  cpu_during dashboards list > "$work/cpu"
  result[$backend,listing]=$(cat "$work/cpu") result[$backend,listing_pg]=$pg_cpu
  # ---- (3) server-sent events: measured when this build has GET /api/stream ----
  # (curl ends the stream after 2 s with exit 28: only the headers it saw count.)
  if { curl -s -N -D - -o /dev/null --max-time 2 "$base/api/stream" 2>/dev/null || true; } |
    grep -qi '^content-type: *text/event-stream'; then
    echo "$CLIENTS streams of /api/stream held for ${WINDOW} s"
    cpu_during streams > "$work/cpu"
    result[$backend,streams]=$(cat "$work/cpu") result[$backend,streams_pg]=$pg_cpu
  else
    result[$backend,streams]="n/a (no /api/stream in this build)"
  fi
  echo "switchback CPU: idle ${result[$backend,idle]} s, dashboards ${result[$backend,dashboards]} s," \
    "with the stale list ${result[$backend,listing]} s, streams ${result[$backend,streams]}"
  echo "switchback RSS: $(awk '/VmRSS/ {print $2 " KiB"}' "/proc/$sb_pid/status")"

  kill "$sb_pid"
  wait "$sb_pid" || true
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for backend in $BACKENDS; do
  run_backend "$backend"
done

echo
echo "== $PHONES phones ($((PHONES - fresh_expected)) never seen), $CLIENTS clients, $(nproc) cores shared with the clients"
echo "(load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg): other work on the machine shows here)"
printf '%-50s' ""
for backend in $BACKENDS; do printf '%22s' "$backend"; done
echo
row() { # label key unit
  printf '%-50s' "$1"
  for backend in $BACKENDS; do printf '%22s' "${result[$backend,$2]}$3"; done
  echo
}
latency_row() { # label key
  printf '%-50s' "$1"
  for backend in $BACKENDS; do
    printf '%22s' "${result[$backend,$2,p50]} / ${result[$backend,$2,p99]} ms"
  done
  echo
}
latency_row "GET /api/status, p50 / p99" status
row "  requests/s" status,rate ""
latency_row "GET /api/phones?stale=true&limit=50, p50 / p99" phones
row "  requests/s" phones,rate ""
row "  stale phones listed (total)" stale ""
cpu_row() { # label key
  printf '%-50s' "$1"
  for backend in $BACKENDS; do
    v=${result[$backend,$2]} pg=${result[$backend,$2_pg]:-}
    if [[ $v == n/a* ]]; then
      printf '%22s' "n/a"
    else
      printf '%22s' "$v s${pg:+ + pg $pg s}"
    fi
  done
  echo
}
cpu_row "switchback CPU, idle ${WINDOW} s" idle
cpu_row "switchback CPU, $CLIENTS dashboards ${WINDOW} s (status/2 s)" dashboards
cpu_row "  logged in: + stale list every 10 s" listing
cpu_row "switchback CPU, $CLIENTS /api/stream ${WINDOW} s" streams
[[ ${result[${BACKENDS%% *},streams]} != n/a* ]] || echo "(/api/stream: not in this build; the row fills in once it answers)"
[[ " $BACKENDS " != *" postgres "* ]] || echo "(+ pg: the CPU of the machine's PostgreSQL processes over the same window, where that backend's queries run)"
