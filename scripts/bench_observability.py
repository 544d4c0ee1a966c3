#!/usr/bin/env python3
"""What metrics and tracing cost end to end (make bench-observability).

Runs the release api and one worker three ways, interleaved ROUNDS times:
  off      FACEREC_METRICS=off, no OTLP export
  metrics  metrics recorded, the api's and the worker's /metrics scraped every second
  both     the same, plus every span exported over OTLP/HTTP to a local sink
Each run registers one face, then submits N recognize jobs with C clients and
polls them to completion (scripts/bench_e2e.py), and times M sequential
GET /v1/jobs/{id} (the api's per-request cost). Prints jobs/s, the CPU the api
and the worker used per job (steadier than throughput on shared cores), the
p50 of the GET, and what the sink received.
"""
import argparse
import http.server
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import bench_e2e  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The binaries run (scripts/smoke_commands.sh points it at target/debug).
BIN = os.path.join(ROOT, os.environ.get("FACEREC_BIN_DIR", os.path.join("target", "release")))
PHOTOS = os.environ.get("FACEREC_PHOTOS_DIR", os.path.join(ROOT, "tests", "fixtures", "photos"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that keeps nothing but counts."""
    requests = 0
    bytes = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        Sink.requests += 1
        Sink.bytes += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_ready(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never became ready")


def cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape_every_second(urls, stop):
    while not stop.is_set():
        for url in urls:
            try:
                urllib.request.urlopen(url, timeout=2).read()
            except Exception:
                pass
        stop.wait(1.0)


def run(variant, args, sink_url):
    api_port, metrics_port = free_port(), free_port()
    base = f"http://127.0.0.1:{api_port}"
    env = dict(os.environ, FACEREC_API_ADDR=f"127.0.0.1:{api_port}", RUST_LOG="warn",
               FACEREC_QUEUE=f"facerec-bench-{uuid.uuid4().hex[:8]}")
    # Open api, /metrics on its public port (an inherited master key or metrics address would move or lock it).
    for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "FACEREC_WORKER_METRICS_ADDR",
              "FACEREC_MASTER_KEY", "FACEREC_API_METRICS_ADDR"):
        env.pop(k, None)
    if variant == "off":
        env["FACEREC_METRICS"] = "off"
    else:
        env["FACEREC_METRICS"] = "on"
        env["FACEREC_WORKER_METRICS_ADDR"] = f"127.0.0.1:{metrics_port}"
    if variant == "both":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
    procs = [subprocess.Popen([os.path.join(BIN, "facerec-api")], env=env),
             subprocess.Popen([os.path.join(BIN, "facerec-worker")], env=env)]
    stop = threading.Event()
    try:
        wait_ready(f"{base}/readyz")
        if variant != "off":
            wait_ready(f"http://127.0.0.1:{metrics_port}/readyz")
            threading.Thread(target=scrape_every_second, daemon=True,
                             args=([f"{base}/metrics", f"http://127.0.0.1:{metrics_port}/metrics"], stop)).start()
        else:
            time.sleep(3)  # the worker loads its models
        collection = f"bench-{uuid.uuid4().hex[:8]}"
        job = bench_e2e.post_form(f"{base}/v1/register", {"subject": "a", "collection": collection},
                                  os.path.join(PHOTOS, "obama.jpg"))
        assert bench_e2e.wait(base, job["job_id"])["status"] == "succeeded"
        photo = os.path.join(PHOTOS, "obama2.jpg")
        for _ in range(args.warmup):
            bench_e2e.one(base, collection, photo)
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        started = time.perf_counter()
        with bench_e2e.cf.ThreadPoolExecutor(args.c) as pool:
            results = list(pool.map(lambda _: bench_e2e.one(base, collection, photo), range(args.n)))
        elapsed = time.perf_counter() - started
        cpu_ms = (sum(cpu_seconds(p.pid) for p in procs) - cpu_before) / args.n * 1000
        assert all(status == "succeeded" for _, status in results)
        latencies = []
        for _ in range(args.m):
            t = time.perf_counter()
            urllib.request.urlopen(f"{base}/v1/jobs/{job['job_id']}").read()
            latencies.append(time.perf_counter() - t)
        return args.n / elapsed, statistics.median(latencies) * 1000, cpu_ms
    finally:
        stop.set()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=90)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=300, help="recognize jobs per run")
    ap.add_argument("-c", type=int, default=4, help="clients")
    ap.add_argument("-m", type=int, default=2000, help="sequential GET /v1/jobs/{id} per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=10, help="recognize jobs per run before timing")
    args = ap.parse_args()
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}"
    results = {v: [] for v in ("off", "metrics", "both")}
    for r in range(args.rounds):
        for variant in results:
            jobs, get_ms, cpu_ms = run(variant, args, sink_url)
            results[variant].append((jobs, get_ms, cpu_ms))
            print(f"round {r + 1} {variant:8s} {jobs:6.1f} recognize jobs/s   {cpu_ms:5.1f} ms CPU per job (api + worker)"
                  f"   GET /v1/jobs/{{id}} p50 {get_ms:.3f} ms", flush=True)
    print(f"\n{args.n} recognize jobs, {args.c} clients, {args.rounds} rounds (median):")
    def medians(rows):
        return [statistics.median(r[i] for r in rows) for i in range(3)]
    base_jobs, base_get, base_cpu = medians(results["off"])
    for variant, rows in results.items():
        jobs, get_ms, cpu_ms = medians(rows)
        print(f"  {variant:8s} {jobs:6.1f} jobs/s ({(jobs / base_jobs - 1) * 100:+.1f} %)   "
              f"{cpu_ms:5.2f} ms CPU per job ({(cpu_ms / base_cpu - 1) * 100:+.1f} %)   "
              f"GET p50 {get_ms:.3f} ms ({(get_ms - base_get) * 1000:+.0f} us)")
    print(f"  OTLP sink: {Sink.requests} export requests, {Sink.bytes / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
