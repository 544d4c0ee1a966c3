#!/usr/bin/env bash
# Runs the api and FACEREC_WORKERS workers (default 1) in the foreground from
# the release build, under a supervisor: a process that dies (a crash, the OOM
# killer's SIGKILL) is restarted after a backoff (1 s, doubling up to 30 s;
# back to 1 s once it has run for a minute) while the others keep serving.
# Ctrl-C or SIGTERM stops them all gracefully: each gets SIGTERM and its drain
# deadline (FACEREC_SHUTDOWN_TIMEOUT_SECS, default 30 s, plus webhook deliveries).
#
# Worker i (from 0) serves /metrics, /healthz and /readyz on
# 127.0.0.1:$((FACEREC_WORKER_METRICS_BASE + i)) (default base 9100; 0: none).
# FACEREC_BIN_DIR picks the binaries (default target/release).
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$FACEREC_ROOT"
bin="${FACEREC_BIN_DIR:-target/release}"
workers="${FACEREC_WORKERS:-1}"
metrics_base="${FACEREC_WORKER_METRICS_BASE:-9100}"
max_backoff="${FACEREC_RESTART_MAX_BACKOFF_SECS:-30}"

log() { echo "facerec[supervisor]: $*" >&2; }

for program in facerec-api facerec-worker; do
  [[ -x "$bin/$program" ]] || { log "$bin/$program is missing; run 'make build' first"; exit 2; }
done

# Runs "$@" until told to stop, restarting it when it exits on its own.
supervise() {
  local name=$1 child="" status began delay=1 stopping=0
  shift
  trap 'stopping=1; [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null' TERM
  trap '' INT # the terminal's Ctrl-C reaches the children directly; the main shell sends TERM
  while ((!stopping)); do
    began=$SECONDS
    "$@" &
    child=$!
    # TERM that came while the child was being started found no child to pass on to.
    ((stopping)) && kill -TERM "$child" 2>/dev/null
    # `wait` returns early when a trapped signal arrives: wait again until the child is gone.
    while wait "$child"; status=$?; kill -0 "$child" 2>/dev/null; do :; done
    child=""
    ((stopping)) && break
    ((SECONDS - began >= 60)) && delay=1
    log "$name exited with status $status; restarting it in ${delay}s"
    sleep "$delay" &
    wait $! 2>/dev/null
    kill $! 2>/dev/null
    delay=$((delay * 2 > max_backoff ? max_backoff : delay * 2))
  done
  exit "${status:-0}"
}

supervisors=()
stop_all() {
  trap - INT TERM
  log "stopping: letting every process finish its work"
  kill -TERM "${supervisors[@]}" 2>/dev/null
  wait "${supervisors[@]}" 2>/dev/null
  exit 0
}
trap stop_all INT TERM

supervise api "$bin/facerec-api" &
supervisors+=($!)
for i in $(seq 0 $((workers - 1))); do
  (
    unset FACEREC_WORKER_METRICS_ADDR # one inherited address would make every worker bind the same port
    ((metrics_base > 0)) && export FACEREC_WORKER_METRICS_ADDR="127.0.0.1:$((metrics_base + i))"
    supervise "worker $i" "$bin/facerec-worker"
  ) &
  supervisors+=($!)
done
log "api on http://${FACEREC_API_ADDR:-127.0.0.1:8080} with $workers worker(s) (metrics from port $metrics_base); Ctrl-C stops them"
# The supervisors only end when told to; wake up for the signal.
while :; do
  wait "${supervisors[@]}"
  sleep 1
done
