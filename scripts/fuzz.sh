#!/usr/bin/env bash
# Fuzzes the upload path (api header check + worker decode) with cargo-fuzz
# (libFuzzer, AddressSanitizer, nightly Rust). Seeds: small PNG/JPEG/WebP files
# generated here plus the fetched test photos (never committed).
# Usage: scripts/fuzz.sh [SECONDS]   (default 600)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$FACEREC_ROOT"
seconds="${1:-600}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
corpus=.cache/fuzz/corpus/upload_image
mkdir -p "$corpus"
python3 - "$corpus" <<'PY'
import os, struct, sys, zlib
out = sys.argv[1]
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
for (w, h, color, depth, bpp) in [(4, 3, 2, 8, 3), (5, 2, 0, 16, 2), (3, 3, 6, 8, 4), (2, 2, 4, 8, 2)]:
    raw = b"".join(b"\x00" + bytes(range(w * bpp)) for _ in range(h))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(os.path.join(out, f"seed_{w}x{h}_{color}_{depth}.png"), "wb").write(png)
PY
if [ -d "$FACEREC_PHOTOS_DIR" ]; then
  # Small real JPEGs (the dlib face chips) make good seeds for the JPEG decoder.
  find "$FACEREC_PHOTOS_DIR" -name '*.jpg' -size -20k | head -20 | xargs -r -I{} cp {} "$corpus/"
fi
cd fuzz
cargo +nightly fuzz run upload_image "../$corpus" -- -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
