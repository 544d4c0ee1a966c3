# Defaults for every make target; any variable already set wins.
# Sourced, not executed.
FACEREC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FACEREC_ROOT
export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/facerec}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$FACEREC_ROOT/.cache/onnxruntime/libonnxruntime.so}"
export FACEREC_DETECTOR_MODEL="${FACEREC_DETECTOR_MODEL:-$FACEREC_ROOT/models/face_detection_yunet_2023mar_dynamic.onnx}"
export FACEREC_EMBEDDER_MODEL="${FACEREC_EMBEDDER_MODEL:-$FACEREC_ROOT/models/face_recognition_sface_2021dec_fast.onnx}"
# SFace as published: what OpenCV runs in the reference tests, and what the rewrite is checked against.
export FACEREC_REFERENCE_EMBEDDER_MODEL="${FACEREC_REFERENCE_EMBEDDER_MODEL:-$FACEREC_ROOT/models/face_recognition_sface_2021dec.onnx}"
export FACEREC_PHOTOS_DIR="${FACEREC_PHOTOS_DIR:-$FACEREC_ROOT/tests/fixtures/photos}"
export FACEREC_CENTERFACE_MODEL="${FACEREC_CENTERFACE_MODEL:-$FACEREC_ROOT/models/centerface_dynamic.onnx}"
export FACEREC_REFERENCE_PYTHON="${FACEREC_REFERENCE_PYTHON:-$FACEREC_ROOT/.cache/refvenv/bin/python}"
# The published YuNet file, which OpenCV's reference pipeline (tests) loads.
export FACEREC_REFERENCE_DETECTOR_MODEL="${FACEREC_REFERENCE_DETECTOR_MODEL:-$FACEREC_ROOT/models/face_detection_yunet_2023mar.onnx}"
