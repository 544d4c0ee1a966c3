#!/usr/bin/env python3
"""Live recognition on this machine (make bench-live).

Starts the release api and ONE worker, registers a person, then streams
640x480 JPEG frames of another photo of them to /v1/live at FPS frames per
second for SECONDS (examples/live_bench.rs), as a camera would: frames keep
coming whatever the answers do, and the api drops stale ones. Prints
answers/s, latency (client round trip, the api's receipt-to-answer, the
worker's own time, and what the api + Redis path adds to it), the share of
answers that name the person, and the resident memory of the api and the
worker every 10 s. With --job-clients N, N clients keep submitting recognize
jobs to the same worker meanwhile (live frames beside jobs), and the jobs'
throughput is printed too.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import bench_e2e  # noqa: E402
from bench_observability import BIN, PHOTOS, free_port, wait_ready  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--job-clients", type=int, default=0, help="clients submitting recognize jobs meanwhile")
    ap.add_argument("--warmup", type=int, default=5, help="answers in the first seconds are not counted")
    args = ap.parse_args()
    if args.seconds <= args.warmup:
        ap.error("--seconds must be longer than --warmup")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, FACEREC_API_ADDR=f"127.0.0.1:{port}", RUST_LOG="warn",
               FACEREC_QUEUE=f"facerec-bench-{uuid.uuid4().hex[:8]}")
    env.pop("FACEREC_MASTER_KEY", None)
    procs = {"api": subprocess.Popen([os.path.join(BIN, "facerec-api")], env=env),
             "worker": subprocess.Popen([os.path.join(BIN, "facerec-worker")], env=env)}
    try:
        wait_ready(f"{base}/readyz")
        collection = f"live-{uuid.uuid4().hex[:8]}"
        for _ in range(120):  # the worker loads its models
            job = bench_e2e.post_form(f"{base}/v1/register", {"subject": "obama", "collection": collection},
                                      os.path.join(PHOTOS, "obama.jpg"))
            if bench_e2e.wait(base, job["job_id"])["status"] == "succeeded":
                break
        url = f"ws://127.0.0.1:{port}/v1/live?collection={collection}"
        stop, jobs_done = threading.Event(), []

        def submit_jobs():
            while not stop.is_set():
                jobs_done.append(bench_e2e.one(base, collection, os.path.join(PHOTOS, "obama2.jpg")))

        loaders = [threading.Thread(target=submit_jobs, daemon=True) for _ in range(args.job_clients)]
        for t in loaders:
            t.start()
        jobs_started = time.perf_counter()
        out = subprocess.run(
            [os.path.join(BIN, "examples", "live_bench"), "--url", url,
             "--photo", os.path.join(PHOTOS, "obama2.jpg"), "--expect", "obama", "--fps", str(args.fps),
             "--seconds", str(args.seconds), "--warmup", str(args.warmup),
             "--pids", ",".join(f"{k}={p.pid}" for k, p in procs.items())],
            check=True, capture_output=True, text=True).stdout
        jobs_elapsed = time.perf_counter() - jobs_started
        stop.set()
        for t in loaders:
            t.join()
        r = json.loads(out.strip().splitlines()[-1])
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(timeout=60)
    print(f"one worker, 640x480 frames at {args.fps:g} fps for {args.seconds} s "
          f"({r['frames_sent']} frames sent, {r['sent_per_s']:.1f}/s)")
    print(f"  answers/s        {r['answers_per_s']:.1f}   (goal >= 14)")
    print(f"  named            {r['named_pct']:.1f} % of answers   (goal >= 95 %)")
    for name, label in [("client_ms", "client round trip"), ("server_ms", "api receipt->answer"),
                        ("worker_ms", "worker's own time"), ("path_ms", "api + Redis path")]:
        print(f"  {label:20s} p50 {r[name]['p50']:6.1f} ms   p99 {r[name]['p99']:6.1f} ms")
    print(f"  dropped frames   {r['dropped_total']}   errors {r['errors']}   "
          f"faces embedded {r['embedded_pct_of_faces']:.1f} % of frames")
    if args.job_clients:
        latencies = sorted(d for d, _ in jobs_done)
        print(f"  beside it: {args.job_clients} clients' recognize jobs, {len(jobs_done) / jobs_elapsed:.1f} jobs/s, "
              f"submit->done p50 {latencies[len(latencies) // 2] * 1000:.0f} ms")
    names = [p.split("=")[0] for p in r["processes"]]
    for sample in r["memory_mib"]:
        print(f"  t={sample['t']:4d} s  " + "  ".join(f"{n} {m:6.1f} MiB" for n, m in zip(names, sample["rss"])))


if __name__ == "__main__":
    main()
