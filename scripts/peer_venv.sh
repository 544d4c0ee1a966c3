#!/usr/bin/env bash
# Creates .cache/peervenv for `make bench-peer`: OpenCV (the reference
# requirements) plus the face_recognition library on dlib's prebuilt wheel,
# every file hash-pinned. Prints nothing when the venv is already up to date.
set -euo pipefail
source "$(dirname "$0")/env.sh"
venv="$FACEREC_ROOT/.cache/peervenv"
ref="$FACEREC_ROOT/tests/reference/requirements.txt"
peer="$FACEREC_ROOT/tests/reference/peer-requirements.txt"
stamp="$venv/requirements.txt"
if [ -x "$venv/bin/python" ] && cat "$ref" "$peer" | cmp -s - "$stamp"; then exit 0; fi
echo "bench-peer: creating .cache/peervenv (OpenCV, dlib, face_recognition; about 120 MB)" >&2
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --require-hashes --only-binary :all: -r "$ref"
# face_recognition_models is published as an sdist only (its models, no code
# to compile); the rest are wheels.
"$venv/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$peer"
"$venv/bin/python" -c "import cv2, dlib, face_recognition"
cat "$ref" "$peer" >"$stamp"
