-- wrk script for bench/dashboard.sh: the request is the URL and headers given to wrk
-- (`-H "Authorization: Bearer …"`); done() prints one `RESULT` line that the script parses.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d non_2xx=%d connect_errors=%d "
      .. "read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
