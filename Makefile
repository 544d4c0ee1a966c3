# facerec: `make up` runs the service, `make test` runs every test.
# Both set up whatever is missing first (scripts/setup.sh) and are idempotent.
SHELL := /bin/bash
ENV := source scripts/env.sh &&
CARGO_TEST_FLAGS ?=

# Which build `build`, `up` and the bench targets make and run: release by
# default; PROFILE=dev runs the debug binaries `make test` built, BUILD=0 runs
# what is built already, and BENCH_ARGS is appended to a benchmark script's
# arguments. scripts/smoke_commands.sh (in `make lint`) runs each bench target
# so, at a tiny size, e.g. `make bench-ingest PROFILE=dev BUILD=0 IMAGES=20`.
PROFILE ?= release
BUILD ?= 1
BENCH_ARGS ?=
# Where run.sh and the bench scripts find the binaries; set in the environment, it wins.
FACEREC_BIN_DIR ?= target/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
CARGO_BUILD := $(if $(filter 0,$(BUILD)),: skipped,) cargo build --quiet --profile $(PROFILE)
RUN := $(ENV) FACEREC_BIN_DIR=$(FACEREC_BIN_DIR)

.PHONY: up test chaos setup build lint smoke fmt bench bench-peer bench-ingest bench-submit bench-auth bench-observability bench-live calibrate help
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

up: setup build ## Set up, build (release; PROFILE=dev: debug) and run the api + FACEREC_WORKERS workers in the foreground
	@FACEREC_BIN_DIR=$(FACEREC_BIN_DIR) bash scripts/run.sh

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

build: ## Build the release binaries (PROFILE=dev: the debug ones)
	@$(ENV) $(CARGO_BUILD) --workspace --bins

lint: ## rustfmt and clippy, warnings as errors; no module circles or unused dependencies (scripts/check_house.py); then `make smoke`
	@cargo fmt --all --check
	@$(ENV) cargo clippy --workspace --all-targets -- -D warnings
	@python3 scripts/check_house.py
	@bash scripts/smoke_commands.sh

smoke: ## Every command the README and docs/ name, once, at a tiny size, on the debug build (after `make test`)
	@bash scripts/smoke_commands.sh

fmt: ## Format the code
	@cargo fmt --all

ROUNDS ?= 10
PHOTOS ?= $$FACEREC_PHOTOS_DIR/*.jpg $$FACEREC_PHOTOS_DIR/group/t1.jpg
bench: ## Per-stage vision timings on the test photos (release build; ROUNDS, default 10; PHOTOS)
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) $(CARGO_BUILD) -p facerec-vision --example bench
	@$(ENV) "$(FACEREC_BIN_DIR)/examples/bench" --rounds $(ROUNDS) $(PHOTOS)

bench-peer: ## Side by side on the same 20 photos: facerec end to end vs OpenCV's YuNet+SFace and face_recognition (dlib)
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) $(CARGO_BUILD) --workspace --bins
	@$(RUN) "$$FACEREC_REFERENCE_PYTHON" scripts/bench_peer.py $(BENCH_ARGS)

IMAGES ?= 2000
bench-ingest: ## Ingestion: CLI and archive batch vs the workers' own pipeline, 1 and 2 workers (IMAGES, default 2000; PIN=1: workers on a core of their own)
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) $(CARGO_BUILD) --workspace --bins
	@$(ENV) $(CARGO_BUILD) -p facerec-vision --example throughput
	@$(RUN) "$$FACEREC_REFERENCE_PYTHON" scripts/bench_ingest.py -n $(IMAGES) $(if $(PIN),--pin) $(BENCH_ARGS)

bench-observability: ## Cost of metrics and OTLP tracing end to end: recognize jobs/s and GET latency, off vs on (release build)
	@bash scripts/setup.sh --with-test-photos >/dev/null
	@$(ENV) $(CARGO_BUILD) --workspace --bins
	@$(RUN) python3 scripts/bench_observability.py $(BENCH_ARGS)

SECONDS_LIVE ?= 60
bench-live: ## Live recognition: one worker, a 640x480 stream at 15 fps for SECONDS_LIVE (default 60): answers/s, latency, named %, memory
	@bash scripts/setup.sh --with-test-photos >/dev/null
	@$(ENV) $(CARGO_BUILD) --workspace --bins
	@$(ENV) $(CARGO_BUILD) --example live_bench
	@$(RUN) python3 scripts/bench_live.py --seconds $(SECONDS_LIVE) $(BENCH_ARGS)

N_AUTH ?= 5000
bench-auth: ## Cost of authentication: GET /v1/jobs/{id} open, with the master key and with an API key (release build)
	@bash scripts/setup.sh --with-test-photos >/dev/null
	@$(ENV) $(CARGO_BUILD) -p facerec-api
	@$(RUN) python3 scripts/bench_auth.py -n $(N_AUTH) $(BENCH_ARGS)

bench-submit: ## Submission path: small submissions with wrk (32 clients) and 100 concurrent 10 MiB uploads (api RSS; sizes: scripts/bench_submit.sh)
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) $(CARGO_BUILD) --workspace --bins
	@$(RUN) bash scripts/bench_submit.sh

calibrate: ## Same/different-person similarities and error rates per threshold on the labelled test photos
	@bash scripts/setup.sh --with-test-photos
	@$(ENV) $(CARGO_BUILD) -p facerec-vision --example calibrate
	@$(ENV) "$(FACEREC_BIN_DIR)/examples/calibrate"
