#!/usr/bin/env bash
# Submission-path benchmark (`make bench-submit`), against the release api on
# a private database and queue, with no worker (so only submission is timed):
#   1. small registers with wrk: 32 connections, 20 s (submissions/s, latency);
#   2. 100 concurrent 10 MiB uploads: the api's peak RSS, its RSS afterwards,
#      and what each upload was answered (only 202 and the documented
#      503 server_busy are acceptable);
#   3. one archive of about 1 GiB posted to /v1/batches: the api's peak RSS
#      (needs the images of `make bench-ingest IMAGES=1000`).
# Smaller runs (scripts/smoke_commands.sh): BENCH_SUBMIT_SECONDS (wrk's 20 s),
# BENCH_SUBMIT_UPLOADS (100) and BENCH_SUBMIT_UPLOAD_MIB (10) change the
# sizes, BENCH_SUBMIT_ARCHIVE=0 skips step 3, FACEREC_BIN_DIR picks the api
# binary (default target/release).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$FACEREC_ROOT"
seconds="${BENCH_SUBMIT_SECONDS:-20}"
uploads="${BENCH_SUBMIT_UPLOADS:-100}"
upload_mib="${BENCH_SUBMIT_UPLOAD_MIB:-10}"
api_bin="${FACEREC_BIN_DIR:-target/release}/facerec-api"
[[ -x "$api_bin" ]] || { echo "bench_submit: $api_bin is missing; build it first" >&2; exit 2; }
if ! command -v wrk >/dev/null; then
  echo "installing wrk from the distribution"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get install -y -q wrk >/dev/null 2>&1 \
    || { $sudo_ apt-get update -q >/dev/null && $sudo_ apt-get install -y -q wrk >/dev/null; }
fi
server="${DATABASE_URL%/*}"
db=facerec_bench_submit
queue="facerec-bench-submit-$$"
addr=127.0.0.1:18088
work=$(mktemp -d)
psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
cleanup() {
  kill "${api:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$queue*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
DATABASE_URL="$server/$db" FACEREC_API_ADDR=$addr FACEREC_QUEUE=$queue FACEREC_MAX_QUEUED_JOBS=100000000 FACEREC_SPOOL_DIR="$work" \
  RUST_LOG=error,tower_http=off "$api_bin" &
api=$!
for _ in $(seq 100); do curl -sf "http://$addr/readyz" >/dev/null && break; sleep 0.1; done

"$FACEREC_REFERENCE_PYTHON" - "$work/small.jpg" <<'PY'
import sys, cv2, numpy as np
img = np.full((96, 96, 3), 128, np.uint8); cv2.circle(img, (48, 48), 30, (40, 90, 200), -1)
cv2.imwrite(sys.argv[1], img, [cv2.IMWRITE_JPEG_QUALITY, 90])
PY
# Start from a clean checkpoint and synced disks: dirty pages left by an earlier run (step 3
# writes a GiB) would otherwise be flushed during this one and stall commits.
psql -q "$server/postgres" -c CHECKPOINT && sync
echo "== small submissions: wrk, 32 connections, $seconds s, POST /v1/register ($(stat -c %s "$work/small.jpg") byte image)"
# 3 s of warm-up (connections opened, caches filled), not counted.
FACEREC_BENCH_IMAGE="$work/small.jpg" wrk -t2 -c32 -d3s -s scripts/wrk_register.lua "http://$addr/v1/register" >/dev/null
FACEREC_BENCH_IMAGE="$work/small.jpg" wrk -t2 -c32 -d"${seconds}s" --latency -s scripts/wrk_register.lua "http://$addr/v1/register" \
  | grep -E "Requests/sec|Latency|50%|90%|99%|requests in|Non-2xx|Socket errors"
echo "   api RSS after wrk: $(awk '/VmRSS/ {print int($2/1024)}' /proc/$api/status) MiB"

echo "== $uploads concurrent $upload_mib MiB uploads"
"$FACEREC_REFERENCE_PYTHON" scripts/bench_uploads.py --api "http://$addr" --pid "$api" --clients "$uploads" --mib "$upload_mib"

echo "== a 1 GiB archive batch (a fresh api: freed memory of step 2 is not returned to the system)"
kill "$api"; wait "$api" 2>/dev/null || true
DATABASE_URL="$server/$db" FACEREC_API_ADDR=$addr FACEREC_QUEUE=$queue FACEREC_MAX_QUEUED_JOBS=100000000 FACEREC_SPOOL_DIR="$work" \
  RUST_LOG=error,tower_http=off "$api_bin" &
api=$!
for _ in $(seq 100); do curl -sf "http://$addr/readyz" >/dev/null && break; sleep 0.1; done
if [ "${BENCH_SUBMIT_ARCHIVE:-1}" = 0 ]; then
  echo "   skipped: BENCH_SUBMIT_ARCHIVE=0"
elif [ -d .cache/bench-ingest/n1000 ]; then
  "$FACEREC_REFERENCE_PYTHON" scripts/bench_archive_rss.py --api "http://$addr" --pid "$api" --work "$work"
else
  echo "   skipped: its images come from 'make bench-ingest IMAGES=1000'"
fi
