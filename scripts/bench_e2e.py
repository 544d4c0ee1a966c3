#!/usr/bin/env python3
"""End-to-end throughput and latency of a running facerec (make up).

Registers one photo, then submits N recognize jobs with C clients in parallel
and polls each to completion. Prints jobs/s and submit-to-done latency.
Usage: bench_e2e.py [--url URL] [-n N] [-c C] REGISTER_PHOTO RECOGNIZE_PHOTO
"""
import argparse
import concurrent.futures as cf
import json
import time
import urllib.request
import uuid


def post_form(url, fields, image_path):
    boundary = uuid.uuid4().hex
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    with open(image_path, "rb") as f:
        image = f.read()
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n'
                 'Content-Type: application/octet-stream\r\n\r\n'.encode() + image + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    req = urllib.request.Request(url, data=b"".join(parts), method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def wait(base, job_id):
    while True:
        with urllib.request.urlopen(f"{base}/v1/jobs/{job_id}") as resp:
            job = json.load(resp)
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.01)


def one(base, collection, photo):
    start = time.perf_counter()
    job = post_form(f"{base}/v1/recognize", {"collection": collection}, photo)
    done = wait(base, job["job_id"])
    return time.perf_counter() - start, done["status"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("-c", type=int, default=4)
    ap.add_argument("register_photo")
    ap.add_argument("recognize_photo")
    a = ap.parse_args()
    collection = f"bench-{uuid.uuid4().hex[:8]}"
    job = post_form(f"{a.url}/v1/register", {"subject": "bench", "collection": collection}, a.register_photo)
    assert wait(a.url, job["job_id"])["status"] == "succeeded"
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(a.c) as pool:
        results = list(pool.map(lambda _: one(a.url, collection, a.recognize_photo), range(a.n)))
    elapsed = time.perf_counter() - start
    lat = sorted(r[0] for r in results)
    ok = sum(r[1] == "succeeded" for r in results)
    print(f"{a.n} recognize jobs, {a.c} clients: {a.n / elapsed:.1f} jobs/s, {ok} succeeded")
    print(f"latency submit->done: p50 {lat[len(lat) // 2] * 1e3:.0f} ms, p95 {lat[int(len(lat) * 0.95)] * 1e3:.0f} ms, "
          f"max {lat[-1] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
