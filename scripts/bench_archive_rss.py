#!/usr/bin/env python3
"""`make bench-submit` step 3: one archive of about 1 GiB (the bench-ingest
images, repeated under new names, stored uncompressed) posted to
`/v1/batches` with curl; prints the api's peak RSS while it is uploaded and
recorded, and how long that took. Runs under the reference venv."""

import argparse
import json
import subprocess
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def build(path, gib, source):
    files = sorted(p for p in source.rglob("*") if p.is_file())
    if not files:
        raise SystemExit(f"no images under {source}: run make bench-ingest first")
    target = int(gib * 2**30)
    written, copy = 0, 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        while written < target:
            for f in files:
                z.write(f, f"{f.parent.name}/{copy:03d}-{f.name}")
                written += f.stat().st_size
                if written >= target:
                    break
            copy += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    archive = Path(args.work) / "big.zip"
    build(archive, args.gib, ROOT / ".cache" / "bench-ingest" / "n1000")
    entries = len(zipfile.ZipFile(archive).namelist())
    peak, done = [rss_mib(args.pid)], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib(args.pid))
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.time()
    out = subprocess.run(["curl", "-sS", "-F", f"archive=@{archive}", "-F", "collection=big", args.api + "/v1/batches"],
                         capture_output=True, text=True, check=True).stdout
    secs = time.time() - t0
    done.set()
    batch = json.loads(out)
    print(f"   {archive.stat().st_size / 2**30:.2f} GiB archive, {entries} entries: answered in {secs:.1f} s "
          f"(status {batch.get('status')}, total {batch.get('total')}, error {batch.get('error')}); "
          f"api peak RSS {peak[0]:.0f} MiB")
    archive.unlink()


if __name__ == "__main__":
    main()
