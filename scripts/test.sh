#!/usr/bin/env bash
# Every test of the workspace, on real peers: installs what the tests talk to if it is
# missing (Kamailio, coturn, HAProxy and systemd-analyze with apt; Chromium and
# playwright-core with apt/npm; the Python standardwebhooks package with pip), checks
# that the machine's PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) answer,
# then runs `cargo test --workspace`. Extra arguments go to cargo test, e.g.
#   scripts/test.sh -p switchback --test cluster
# With CI=true a test whose peer is missing fails instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

.ci/install-peers
.ci/install-browser
.ci/install-python-deps
if (($#)); then
  exec cargo test "$@"
fi
exec cargo test --workspace
