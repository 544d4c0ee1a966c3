# facerec: `make up` runs the service, `make test` runs every test.
# Both set up whatever is missing first (scripts/setup.sh) and are idempotent.
SHELL := /bin/bash
ENV := source scripts/env.sh &&
CARGO_TEST_FLAGS ?=

.PHONY: up test chaos setup build lint fmt bench bench-peer bench-ingest bench-submit bench-auth bench-observability bench-live calibrate help
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

up: setup build ## Set up, build (release) and run the api + FACEREC_WORKERS workers in the foreground
	@bash scripts/run.sh

test: ## Set up (with test photos) and run every test
	@bash scripts/setup.sh --with-test-photos
	@bash scripts/test.sh $(CARGO_TEST_FLAGS)

N ?= 1000
chaos: ## Chaos test: N jobs (default 1000) while workers are killed and Redis is flushed
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) cargo build --quiet --workspace --bins
	@$(ENV) python3 scripts/chaos.py -n $(N)

setup: ## Install or start PostgreSQL+pgvector and Redis, fetch runtime and models, create the database
	@bash scripts/setup.sh

build: ## Build the release binaries
	@$(ENV) cargo build --release --workspace --bins

lint: ## rustfmt and clippy, warnings as errors
	@cargo fmt --all --check
	@$(ENV) cargo clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	@cargo fmt --all

bench: ## Per-stage vision timings on the test photos (release build)
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) cargo run -q --release -p facerec-vision --example bench -- --rounds 10 $$FACEREC_PHOTOS_DIR/*.jpg $$FACEREC_PHOTOS_DIR/group/t1.jpg

bench-peer: ## Side by side on the same 20 photos: facerec end to end vs OpenCV's YuNet+SFace and face_recognition (dlib)
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) cargo build --quiet --release --workspace --bins
	@$(ENV) "$$FACEREC_REFERENCE_PYTHON" scripts/bench_peer.py

IMAGES ?= 2000
bench-ingest: ## Ingestion: CLI and archive batch vs the workers' own pipeline, 1 and 2 workers (IMAGES, default 2000; PIN=1: workers on a core of their own)
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) cargo build --quiet --release --workspace --bins
	@$(ENV) cargo build --quiet --release -p facerec-vision --example throughput
	@$(ENV) "$$FACEREC_REFERENCE_PYTHON" scripts/bench_ingest.py -n $(IMAGES) $(if $(PIN),--pin)

bench-observability: ## Cost of metrics and OTLP tracing end to end: recognize jobs/s and GET latency, off vs on (release build)
	@bash scripts/setup.sh --with-test-photos >/dev/null
	@$(ENV) cargo build --quiet --release --workspace --bins
	@$(ENV) python3 scripts/bench_observability.py

SECONDS_LIVE ?= 60
bench-live: ## Live recognition: one worker, a 640x480 stream at 15 fps for SECONDS_LIVE (default 60): answers/s, latency, named %, memory
	@bash scripts/setup.sh --with-test-photos >/dev/null
	@$(ENV) cargo build --quiet --release --workspace --bins
	@$(ENV) cargo build --quiet --release --example live_bench
	@$(ENV) python3 scripts/bench_live.py --seconds $(SECONDS_LIVE)

N_AUTH ?= 5000
bench-auth: ## Cost of authentication: GET /v1/jobs/{id} open, with the master key and with an API key (release build)
	@bash scripts/setup.sh --with-test-photos >/dev/null
	@$(ENV) cargo build --quiet --release -p facerec-api
	@$(ENV) python3 scripts/bench_auth.py -n $(N_AUTH)

bench-submit: ## Submission path: small submissions with wrk (32 clients) and 100 concurrent 10 MiB uploads (api RSS)
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) cargo build --quiet --release --workspace --bins
	@$(ENV) bash scripts/bench_submit.sh

calibrate: ## Same/different-person similarities and error rates per threshold on the labelled test photos
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) cargo run -q --release -p facerec-vision --example calibrate
