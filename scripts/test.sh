#!/usr/bin/env bash
# Runs every test of the workspace and ends with one total line
# ("tests: N passed, N failed"), since cargo's own output ends with the
# per-binary result of whichever test binary happens to run last.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$FACEREC_ROOT"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The binaries themselves: tests run them as an operator would (tests/api/api_key_process.rs, tests/ops/cli_keys.rs).
cargo build --workspace --bins 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -eq 0 ]; then
  cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
fi
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
echo
echo "tests: $passed passed, $failed failed"
exit "$status"
