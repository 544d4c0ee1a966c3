#!/usr/bin/env bash
# Runs the api and FACEREC_WORKERS workers (default 1) in the foreground from
# the release build; Ctrl-C (or any of them exiting) stops them all.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$FACEREC_ROOT"
bin=target/release
workers="${FACEREC_WORKERS:-1}"
pids=()
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
"$bin/facerec-api" & pids+=($!)
for _ in $(seq "$workers"); do "$bin/facerec-worker" & pids+=($!); done
echo "facerec: api on http://${FACEREC_API_ADDR:-127.0.0.1:8080} with $workers worker(s); Ctrl-C stops them"
set +e
wait -n "${pids[@]}"
status=$?
stop
exit "$status"
