#!/usr/bin/env bash
# One archive batch, end to end, and where its time goes: the api (with
# PostgreSQL and Redis) on the first core, one worker with one pipeline on the
# last, like `make bench-ingest PIN=1`. Posts ARCHIVE (default: the 2,000-image
# zip that `make bench-ingest` builds) and prints, from the batch's and its
# jobs' rows: the upload to the 202, the wait for the first job to be fed
# and then claimed, the processing, how long after its last job the batch is
# seen to end, and PostgreSQL's CPU over the whole batch.
#
# usage: scripts/batch_timeline.sh [BIN_DIR (target/release)] [ARCHIVE]
# Compare two builds by running it with each one's BIN_DIR, alternately.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$FACEREC_ROOT"
bin=${1:-target/release}
archive=${2:-.cache/bench-ingest/n2000.zip}
[ -f "$archive" ] || { echo "no $archive: run make bench-ingest once, or name an archive" >&2; exit 2; }
cores=$(nproc)
[ "$cores" -ge 2 ] || { echo "needs at least 2 cores" >&2; exit 2; }
servers="0-$((cores - 2))" worker_core=$((cores - 1))
addr=127.0.0.1:18099 db=facerec_batch_timeline
base=${DATABASE_URL%%\?*}
server=${base%/*}
query=${DATABASE_URL#"$base"}

pin_servers() {
  for pid in $(pgrep -x postgres) $(pgrep -x redis-server); do taskset -a -p -c "$1" "$pid" >/dev/null; done
}
postgres_cpu_secs() {
  for pid in $(pgrep -x postgres); do awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true; done |
    awk -v hz="$(getconf CLK_TCK)" '{s += $1} END {printf "%.2f", s / hz}'
}
now() { date +%s.%N; }
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

psql "$server/postgres$query" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  pin_servers "0-$((cores - 1))"
  psql "$server/postgres$query" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT
pin_servers "$servers"
export DATABASE_URL="$server/$db$query" FACEREC_API_ADDR=$addr FACEREC_LOG=warn RUST_LOG=warn \
  FACEREC_QUEUE="facerec-batch-timeline-$$" FACEREC_INTRA_THREADS=1 FACEREC_WORKER_CONCURRENCY=1
taskset -c "$servers" "$bin/facerec-api" & pids+=($!)
for _ in $(seq 100); do curl -sf "http://$addr/healthz" >/dev/null && break; sleep 0.1; done
taskset -c "$worker_core" "$bin/facerec-worker" & pids+=($!)
sleep 4 # models loaded

cpu0=$(postgres_cpu_secs)
t0=$(now)
id=$(taskset -c "$servers" curl -sS -F "archive=@$archive" -F collection=timeline "http://$addr/v1/batches" | json_field batch_id)
t1=$(now)
while [ "$(curl -sS "http://$addr/v1/batches/$id" | json_field status)" = running ]; do sleep 0.05; done
t2=$(now)
cpu1=$(postgres_cpu_secs)

python3 - "$t0" "$t1" "$t2" "$cpu0" "$cpu1" <<'EOF'
import sys
t0, t1, t2, c0, c1 = map(float, sys.argv[1:])
print(f"upload and recording, to the 202  {t1 - t0:7.3f} s")
print(f"whole batch, as a client sees it  {t2 - t0:7.3f} s")
print(f"PostgreSQL CPU over the batch     {c1 - c0:7.3f} s")
EOF
psql "$DATABASE_URL" -At -F ' ' \
  -c "SELECT 'recording started -> first job fed ', round(extract(epoch FROM (SELECT min(created_at) FROM jobs) - created_at), 3), 's' FROM batches" \
  -c "SELECT 'first job fed -> claimed           ', round(extract(epoch FROM min(started_at) - min(created_at)), 3), 's' FROM jobs" \
  -c "SELECT 'first claim -> last job ended      ', round(extract(epoch FROM max(finished_at) - min(started_at)), 3), 's' FROM jobs" \
  -c "SELECT 'last job ended -> batch ended      ', round(extract(epoch FROM finished_at - (SELECT max(finished_at) FROM jobs)), 3), 's' FROM batches"
