#!/usr/bin/env bash
# Gallery search benchmark (see scripts/search_bench.py for what it measures).
# Creates .cache/benchvenv with hash-pinned packages on first use, then runs
# the benchmark with every argument passed through, e.g.
#   bash scripts/search_bench.sh --sizes 100000,1000000 --ef 40,100,200
# With --in-memory it builds the search_probe example in release mode, unless
# FACEREC_BIN_DIR names binaries built already (scripts/smoke_commands.sh
# passes target/debug, which `make test` built).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.cache/benchvenv"
# CPython 3.11, x86_64 manylinux wheels. asyncpg takes $n placeholders natively,
# so the store's SQL files run verbatim as server-side prepared statements.
REQS='numpy==2.2.6 --hash=sha256:ba10f8411898fc418a521833e014a77d3ca01c15b0c6cdcce6a0d2897e6dbbdf
asyncpg==0.32.0 --hash=sha256:968c570c5913b7ce0995953d7239bd2367142d1af4359f87699f7a6ca75c4382'
if [[ ! -f "$VENV/.installed" ]] || [[ "$(cat "$VENV/.installed")" != "$REQS" ]]; then
    python3 -m venv --clear "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
        --require-hashes -r /dev/stdin <<<"$REQS"
    printf '%s' "$REQS" >"$VENV/.installed"
fi
if [[ " $* " == *" --in-memory "* ]] && [[ -z "${FACEREC_BIN_DIR:-}" ]]; then
    # recognize's in-memory search is measured through the store's own code.
    (cd "$ROOT" && source scripts/env.sh && cargo build --quiet --release -p facerec-store --example search_probe)
fi
exec "$VENV/bin/python" "$ROOT/scripts/search_bench.py" "$@"
