#!/usr/bin/env python3
"""Recognize end to end against a large gallery and against an empty one.

Starts facerec's api and one worker (the built binaries) on DATABASE_URL, which
must already hold a large collection of faces made by the worker's embedder,
e.g. the database scripts/search_bench.py loaded (its cluster keeps its data in
.cache/benchpg after a run; start it again with
`runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D .cache/benchpg/data -l .cache/benchpg/log start`).
Then recognizes the same photo N times in the large collection and N times in
a new empty one, one job at a time, and prints the median and p95 of the
worker's processing time and of the client's submit-to-result time for both.

    python3 scripts/recognize_latency.py \\
        --database-url 'postgres://postgres@localhost/postgres?host=/work/main/.cache/benchpg&port=5499' \\
        --collection big --photo tests/fixtures/photos/obama2.jpg -n 40
"""
import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent


def post_form(url, image, fields):
    boundary = uuid.uuid4().hex
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\n'.encode()
             + image + f"\r\n--{boundary}--\r\n".encode())
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def get(url):
    with urllib.request.urlopen(url) as resp:
        return json.load(resp)


def recognize(base, image, collection):
    started = time.perf_counter()
    job_id = post_form(f"{base}/v1/recognize", image, {"collection": collection})["job_id"]
    while True:
        job = get(f"{base}/v1/jobs/{job_id}")
        if job["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.002)
    assert job["status"] == "succeeded", job
    return (time.perf_counter() - started) * 1000, job["durations"]["processing_ms"], job["result"]


def summary(values):
    values = sorted(values)
    return statistics.median(values), values[int(0.95 * (len(values) - 1))]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", required=True)
    p.add_argument("--collection", required=True, help="the large collection")
    p.add_argument("--photo", required=True)
    p.add_argument("-n", type=int, default=40)
    p.add_argument("--bin-dir", default=str(ROOT / os.environ.get("FACEREC_BIN_DIR", "target/release")),
                   help="where facerec-api and facerec-worker are (default: $FACEREC_BIN_DIR, else target/release)")
    a = p.parse_args()
    image = pathlib.Path(a.photo).read_bytes()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": a.database_url, "FACEREC_QUEUE": f"latency-{uuid.uuid4().hex[:8]}",
           "FACEREC_API_ADDR": f"127.0.0.1:{port}", "RUST_LOG": "warn", "FACEREC_POLL_INTERVAL_MS": "2"}
    procs = [subprocess.Popen([str(pathlib.Path(a.bin_dir) / name)], env=env, cwd=ROOT)
             for name in ("facerec-api", "facerec-worker")]
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if get(f"{base}/readyz")["status"] == "ready":
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        empty = f"latency-empty-{uuid.uuid4().hex[:8]}"
        req = urllib.request.Request(f"{base}/v1/collections", data=json.dumps({"name": empty}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req).close()
        faces = get(f"{base}/v1/collections/{a.collection}")["face_count"]
        rows = {}
        for name in (a.collection, empty, a.collection, empty):  # interleaved, after a warm-up each
            recognize(base, image, name)
            runs = [recognize(base, image, name) for _ in range(a.n // 2)]
            rows.setdefault(name, []).extend(runs)
        print(f"{'collection':>24} {'faces':>9} {'processing p50/p95 ms':>22} {'end to end p50/p95 ms':>22}")
        for name, runs in rows.items():
            count = faces if name == a.collection else 0
            proc, wall = summary([r[1] for r in runs]), summary([r[0] for r in runs])
            print(f"{name:>24} {count:>9} {proc[0]:>10.1f} /{proc[1]:>9.1f} {wall[0]:>10.1f} /{wall[1]:>9.1f}")
        big, small = summary([r[0] for r in rows[a.collection]])[0], summary([r[0] for r in rows[empty]])[0]
        print(f"end to end, median: {big / small:.3f}x the empty collection's")
        top = rows[a.collection][-1][2]["faces"][0]["matches"][:1]
        print(f"top match in {a.collection}: {top}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
