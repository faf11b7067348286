# Shared by the benchmark scripts (sourced, not run).

# The [[sites]] of a benchmark config: both sites on a port where nothing listens
# (discard, 9), databases in the work folder $1. The monitor sees itself blind and
# moves nothing, so the generation stays put while the load runs.
offline_sites() { # work_folder
  cat <<TOML
[[sites]]
name = "chicago"
role = "primary"
softswitch = { host = "127.0.0.1", port = 9 }
database = { url = "sqlite://$1/chicago.db" }
stun = { host = "127.0.0.1", port = 9 }
[[sites]]
name = "virginia"
role = "backup"
softswitch = { host = "127.0.0.1", port = 9 }
database = { url = "sqlite://$1/virginia.db" }
stun = { host = "127.0.0.1", port = 9 }
TOML
}
