#!/usr/bin/env bash
# Runs every command that README.md and docs/ name (benchmarks, scripts, make
# targets) once, at a tiny size, so that a documented command which stops
# working fails `make lint` (this script's last step) instead of the next
# person who copies it from the docs. Each run is checked for running to the
# end, not for its figures: those need the release build and a quiet machine.
#
# Runs the debug build (FACEREC_BIN_DIR, default target/debug), never a
# release one: first `cargo build --workspace --bins --examples` (unless
# FACEREC_SMOKE_BUILD=0), which after `make test` compiles only the examples
# themselves (`cargo test` builds them as test harnesses, not as programs).
# Everything runs against a database of its own, Redis database 8
# (FACEREC_SMOKE_REDIS_DB) and queues and ports of its own, on 127.0.0.1. Commands that need what this machine may not have (a
# Docker engine, a nightly fuzzing build, a 120 MB download) are listed as
# skipped with the reason. Every command runs even after one fails; the last
# lines name each one that failed, with the end of its log
# (.cache/smoke/logs/), and the exit status is 1.
#
# Usage: scripts/smoke_commands.sh [NAME_FILTER]   (runs only the commands whose
# name contains NAME_FILTER, e.g. `search_bench`)
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$FACEREC_ROOT"
# Called from `make lint`: the bench targets below are run as new makes, not
# as part of that one (whose command-line variables would otherwise leak in).
unset MAKEFLAGS MFLAGS MAKELEVEL

filter="${1:-}"
export FACEREC_BIN_DIR="${FACEREC_BIN_DIR:-target/debug}"
bin="$FACEREC_BIN_DIR"
photos="$FACEREC_PHOTOS_DIR"
work="$FACEREC_ROOT/.cache/smoke"
logs="$work/logs"
step_timeout="${FACEREC_SMOKE_STEP_TIMEOUT:-300}"
rm -rf "$logs"
mkdir -p "$logs"

started=$SECONDS
failed=()
passed=0
skipped=0

# step NAME COMMAND...: runs COMMAND (a program or a function of this script)
# with its output in a log of its own; a failure prints the log's end.
step() {
  local name=$1 t0=$SECONDS log status
  shift
  [[ -z "$filter" || "$name" == *"$filter"* ]] || return 0
  log="$logs/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_' | cut -c1-80).log"
  printf 'smoke: %s ... ' "$name"
  # timeout puts the command in a process group of its own and ends the whole
  # group at the deadline (servers started by a benchmark included).
  timeout -k 10 "$step_timeout" bash -c '"$@"' _ "$@" >"$log" 2>&1
  status=$?
  if [ "$status" -eq 0 ]; then
    echo "ok ($((SECONDS - t0)) s)"
    passed=$((passed + 1))
  else
    [ "$status" -eq 124 ] && echo "FAILED: timed out after $step_timeout s" || echo "FAILED (exit $status, $((SECONDS - t0)) s)"
    tail -n 25 "$log" | sed 's/^/    | /'
    failed+=("$name (log: ${log#"$FACEREC_ROOT"/})")
  fi
}

# skip NAME REASON: a documented command this script does not run, and why.
skip() {
  [[ -z "$filter" || "$1" == *"$filter"* ]] || return 0
  echo "smoke: $1 ... skipped: $2"
  skipped=$((skipped + 1))
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # URL SECONDS
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.3
  done
  echo "$1 did not answer within $2 s"
  return 1
}

# --- this run's database, Redis database and queues --------------------------
db_base="${DATABASE_URL%%\?*}"
db_query=""
[[ "$DATABASE_URL" == *\?* ]] && db_query="?${DATABASE_URL#*\?}"
db_server="${db_base%/*}"
smoke_db="facerec_smoke_$$"
admin_url="$db_server/postgres$db_query"
export DATABASE_URL="$db_server/$smoke_db$db_query"
redis_host="${REDIS_URL#*://}"
redis_host="${redis_host%%/*}"
export REDIS_URL="redis://$redis_host/${FACEREC_SMOKE_REDIS_DB:-8}"
export FACEREC_QUEUE="facerec-smoke-$$"
unset FACEREC_MASTER_KEY FACEREC_API_ADDR FACEREC_WORKER_METRICS_ADDR FACEREC_API_METRICS_ADDR \
  OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT

cleanup() {
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $smoke_db WITH (FORCE)" >/dev/null 2>&1
  # The queues the benchmarks made here (each names its own; some leave keys behind).
  local pattern
  for pattern in "facerec-smoke-*" "facerec-bench-*" "latency-*" "bench-auth-*" "facerec-schemathesis-*"; do
    redis-cli -u "$REDIS_URL" --scan --pattern "$pattern" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null 2>&1
  done
}
trap cleanup EXIT

if [ "${FACEREC_SMOKE_BUILD:-1}" != 0 ]; then
  echo "smoke: cargo build --workspace --bins --examples (debug)"
  cargo build --quiet --workspace --bins --examples || { echo "smoke: FAILED: the debug build"; exit 1; }
fi
bash scripts/setup.sh --with-test-photos >/dev/null || { echo "smoke: FAILED: scripts/setup.sh --with-test-photos"; exit 1; }
psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $smoke_db WITH (FORCE)" -c "CREATE DATABASE $smoke_db" >/dev/null \
  || { echo "smoke: FAILED: could not create database $smoke_db"; exit 1; }

# --- the commands -------------------------------------------------------------

step "make help" make -s help

# `make up` (README) under its supervisor, then scripts/bench_e2e.py against
# it as docs/benchmarks.md runs it, then SIGTERM to its process group (as a
# service manager stops it; a Ctrl-C cannot be imitated from here: a job
# started in the background ignores SIGINT) must stop everything.
make_up() {
  local port group ok=1
  port=$(free_port)
  FACEREC_API_ADDR="127.0.0.1:$port" FACEREC_WORKER_METRICS_BASE=0 \
    setsid make -s up PROFILE=dev BUILD=0 >"$logs/make_up.server.log" 2>&1 &
  group=$!
  # setsid took it out of the step's process group: stop it if the step times out.
  trap 'kill -KILL -- "-$group" 2>/dev/null; exit 1' TERM
  if wait_ready "http://127.0.0.1:$port/readyz" 120; then
    python3 scripts/bench_e2e.py --url "http://127.0.0.1:$port" -n 3 -c 1 \
      "$photos/obama.jpg" "$photos/obama2.jpg" || ok=0
  else
    ok=0
  fi
  trap - TERM
  kill -TERM -- "-$group" 2>/dev/null
  for _ in $(seq 120); do kill -0 -- "-$group" 2>/dev/null || break; sleep 0.5; done
  if kill -0 -- "-$group" 2>/dev/null; then
    echo "make up: still running 60 s after SIGTERM"
    kill -KILL -- "-$group" 2>/dev/null
    ok=0
  fi
  ((ok)) || tail -n 20 "$logs/make_up.server.log"
  ((ok))
}
export -f make_up wait_ready free_port
export logs photos
step "make setup, make build, make up (PROFILE=dev) + python3 scripts/bench_e2e.py -n 3 -c 1" make_up

step "python3 scripts/fetch_assets.py runtime models" python3 scripts/fetch_assets.py runtime models

# --- vision: docs/benchmarks.md ("Speed", "Accuracy", "Worst-case upload cost")
step "make bench (ROUNDS=1, one photo)" \
  make -s bench PROFILE=dev BUILD=0 ROUNDS=1 PHOTOS="$photos/obama.jpg"
step "cargo run -p facerec-vision --example throughput -- --concurrency 1 PHOTOS" \
  "$bin/examples/throughput" --concurrency 1 "$photos/obama.jpg" "$photos/biden.jpg"
step "cargo run -p facerec-vision --example throughput -- --all-faces --concurrency 2 --shared-batch 8 PHOTOS" \
  "$bin/examples/throughput" --all-faces --concurrency 2 --shared-batch 8 "$photos/obama.jpg" "$photos/group/t1.jpg"
step "cargo run -p facerec-vision --example profile_embedder -- --runs 3" \
  "$bin/examples/profile_embedder" --runs 3
step "cargo run -p facerec-vision --example detect_cost -- --rounds 1 --configs 640:24,100000:0 PHOTO" \
  "$bin/examples/detect_cost" --rounds 1 --configs 640:24,100000:0 "$photos/obama.jpg"
step "cargo run -p facerec-vision --example upload_cost -- --detect --rounds 1" \
  "$bin/examples/upload_cost" --detect --rounds 1
# calibrate reads every photo under FACEREC_PHOTOS_DIR: a few of each label.
calibrate() {
  local few="$FACEREC_ROOT/.cache/smoke/calibrate-photos"
  rm -rf "$few" && mkdir -p "$few/johns"
  cp "$photos"/obama.jpg "$photos"/obama2.jpg "$photos"/biden.jpg "$few/"
  local person
  for person in $(ls "$photos/johns" | head -2); do
    mkdir -p "$few/johns/$person"
    cp $(ls -d "$photos/johns/$person"/*.jpg | head -2) "$few/johns/$person/"
  done
  FACEREC_PHOTOS_DIR="$few" make -s calibrate PROFILE=dev BUILD=0
}
export -f calibrate
step "make calibrate (7 of the labelled photos)" calibrate
skip "FACEREC_SMALL_FACE_SIZES=… cargo test --release -p facerec-vision --test small_faces" \
  "make test runs this test at its default sizes"

# --- the service: docs/benchmarks.md, docs/operations.md, docs/api.md ---------
step "make bench-peer (3 photos, 1 round, no face_recognition)" \
  make -s bench-peer PROFILE=dev BUILD=0 BENCH_ARGS="--rounds 1 --clients 2 --limit 3 --dlib-rounds 0"
skip "bash scripts/peer_venv.sh (face_recognition for make bench-peer)" \
  "downloads ~120 MB of wheels (dlib); make bench-peer builds it unless --dlib-rounds 0"
step "make bench-ingest IMAGES=20 (1 worker)" \
  make -s bench-ingest PROFILE=dev BUILD=0 IMAGES=20 BENCH_ARGS="--workers 1"
step "make bench-observability (4 jobs, 1 round)" \
  make -s bench-observability PROFILE=dev BUILD=0 BENCH_ARGS="-n 4 -c 2 -m 20 --rounds 1 --warmup 1"
step "make bench-live SECONDS_LIVE=4" \
  make -s bench-live PROFILE=dev BUILD=0 SECONDS_LIVE=4 BENCH_ARGS="--warmup 1"
step "make bench-auth N_AUTH=60" \
  make -s bench-auth PROFILE=dev BUILD=0 N_AUTH=60 BENCH_ARGS="--rounds 2 --warmup 5"
step "make bench-submit (wrk 2 s, 4 uploads of 1 MiB, no archive)" \
  env BENCH_SUBMIT_SECONDS=2 BENCH_SUBMIT_UPLOADS=4 BENCH_SUBMIT_UPLOAD_MIB=1 BENCH_SUBMIT_ARCHIVE=0 \
  make -s bench-submit PROFILE=dev BUILD=0

# --- the gallery at scale: docs/scaling.md ------------------------------------
# search_bench.sh on 6,000 faces (over FACEREC_EXACT_SEARCH_MAX_FACES, so the
# in-memory index serves them), in a cluster folder and port of its own; then
# recognize_latency.py against that cluster, started again as its usage says.
pg_dir="$work/benchpg"
pg_port="${FACEREC_SMOKE_PG_PORT:-5497}"
export pg_dir pg_port
step "bash scripts/search_bench.sh (6,000 faces: HNSW m 16, exact, --in-memory)" \
  bash scripts/search_bench.sh --sizes 6000 --index 16:64 --ef 40 --iterative strict_order \
  --probes 40 --exact-probes 20 --clients 1,2 --small-collections 20 --exact-sizes 1000 --in-memory \
  --port "$pg_port" --pg-dir "$pg_dir" --out-dir "$work/search_bench" \
  --pg-set shared_buffers=128MB --pg-set maintenance_work_mem=256MB --pg-set effective_cache_size=1GB
recognize_latency() {
  [ -d "$pg_dir/data" ] || { echo "no cluster in $pg_dir: the search_bench.sh step did not run"; return 1; }
  local pg_ctl=(/usr/lib/postgresql/15/bin/pg_ctl -D "$pg_dir/data" -l "$pg_dir/log")
  [ "$(id -u)" -eq 0 ] && pg_ctl=(runuser -u postgres -- "${pg_ctl[@]}")
  "${pg_ctl[@]}" -w start || return 1
  python3 scripts/recognize_latency.py \
    --database-url "postgres://postgres@localhost/postgres?host=$pg_dir&port=$pg_port" \
    --collection big --photo "$photos/obama2.jpg" -n 4
  local status=$?
  "${pg_ctl[@]}" -m fast -w stop
  return "$status"
}
export -f recognize_latency
step "python3 scripts/recognize_latency.py (on the search_bench.sh cluster, -n 4)" recognize_latency
step "cargo run -p facerec-face-index --example search_cost -- 20000" \
  "$bin/examples/search_cost" 20000

# --- longer checks: docs/development.md ---------------------------------------
step "bash scripts/schemathesis.sh (fuzzing phase, 3 examples per operation)" \
  env SCHEMATHESIS_PORT="$(free_port)" bash scripts/schemathesis.sh --phases fuzzing --max-examples 3
skip "bash scripts/fuzz.sh [SECONDS]" \
  "builds the fuzz target with nightly Rust, cargo-fuzz and AddressSanitizer (minutes); run by hand"
skip "make chaos" "CI runs make chaos N=60 just before make lint"
skip "make test" "CI runs it first; this script runs on what it built"
skip "make lint, make fmt" "make lint is what runs this; make fmt rewrites files (lint checks them)"
skip "make build, make up (release), cargo build --release -p …" \
  "a release build takes minutes; the same targets ran above with PROFILE=dev"
skip "docker compose up --build (docs/operations.md)" \
  "needs a Docker engine; make test validates the compose file (docker-compose config)"

# --- summary ------------------------------------------------------------------
echo
echo "smoke: $passed ran, $skipped skipped, ${#failed[@]} failed, in $((SECONDS - started)) s"
if [ "${#failed[@]}" -gt 0 ]; then
  for name in "${failed[@]}"; do echo "smoke: FAILED: $name"; done
  exit 1
fi
