#!/usr/bin/env python3
"""Cost of authentication per request: p50/p99 of GET /v1/jobs/{id} against
the same database from an open api, and from an api with a master key called
with the master key and with an API key (one PostgreSQL read per request).

Starts two release api binaries on a fresh database (no worker: the job stays
queued), one keep-alive connection per mode, modes interleaved in rounds so
drift hits all alike. Usage: make bench-auth [N=requests per mode]."""

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MASTER = "bench-master-" + uuid.uuid4().hex


def start_api(env_extra, log):
    env = {k: v for k, v in os.environ.items() if k not in ("FACEREC_MASTER_KEY", "FACEREC_KEY_RATE_PER_SEC")}
    env.update(FACEREC_API_ADDR="127.0.0.1:0", RUST_LOG="warn,facerec_api=info", NO_COLOR="1", **env_extra)
    # FACEREC_BIN_DIR: scripts/smoke_commands.sh runs the debug build.
    api = os.path.join(ROOT, os.environ.get("FACEREC_BIN_DIR", "target/release"), "facerec-api")
    proc = subprocess.Popen([api], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(log.name) as f:
            m = re.search(r"api listening.*?127\.0\.0\.1:(\d+)", f.read())
        if m:
            return proc, int(m.group(1))
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"api did not start; see {log.name}")


def request(conn, method, path, headers=None, body=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5000, help="requests per mode")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=200, help="requests per mode before timing")
    args = parser.parse_args()
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    db = f"facerec_bench_auth_{os.getpid()}"
    subprocess.run(["psql", f"{server}/postgres", "-qc", f"CREATE DATABASE {db}"], check=True)
    env = {"DATABASE_URL": f"{server}/{db}", "FACEREC_QUEUE": f"bench-auth-{os.getpid()}"}
    logs = tempfile.mkdtemp()
    procs = []
    try:
        open_api, open_port = start_api(env, open(os.path.join(logs, "open.log"), "w"))
        procs.append(open_api)
        keyed_api, keyed_port = start_api({**env, "FACEREC_MASTER_KEY": MASTER}, open(os.path.join(logs, "keyed.log"), "w"))
        procs.append(keyed_api)
        photo = os.path.join(os.environ.get("FACEREC_PHOTOS_DIR", os.path.join(ROOT, "tests/fixtures/photos")), "obama.jpg")
        out = subprocess.run(["curl", "-sf", "-F", f"image=@{photo}", f"http://127.0.0.1:{open_port}/v1/embed"],
                             check=True, capture_output=True).stdout
        job = json.loads(out)["job_id"]
        keyed = http.client.HTTPConnection("127.0.0.1", keyed_port)
        master_header = {"Authorization": f"Bearer {MASTER}", "Content-Type": "application/json"}
        body = json.dumps({"name": "bench", "actions": ["jobs.read", "embed"], "collections": ["*"]})
        status, created = request(keyed, "POST", "/v1/keys", master_header, body)
        assert status == 201, created
        key = json.loads(created)["key"]
        modes = {
            "open (no key)": (http.client.HTTPConnection("127.0.0.1", open_port), {}),
            "master key": (http.client.HTTPConnection("127.0.0.1", keyed_port), {"Authorization": f"Bearer {MASTER}"}),
            "API key": (http.client.HTTPConnection("127.0.0.1", keyed_port), {"Authorization": f"Bearer {key}"}),
        }
        # An embed job is visible only to its submitter: the API key reads one of its own.
        out = subprocess.run(["curl", "-sf", "-H", f"Authorization: Bearer {key}", "-F", f"image=@{photo}",
                              f"http://127.0.0.1:{keyed_port}/v1/embed"], check=True, capture_output=True).stdout
        paths = {name: f"/v1/jobs/{job}" for name in modes}
        paths["API key"] = f"/v1/jobs/{json.loads(out)['job_id']}"
        times = {name: [] for name in modes}
        for name, (conn, headers) in modes.items():  # warm up
            for _ in range(args.warmup):
                request(conn, "GET", paths[name], headers)
        per_round = max(1, args.n // args.rounds)
        for _ in range(args.rounds):
            for name, (conn, headers) in modes.items():
                for _ in range(per_round):
                    start = time.perf_counter()
                    status, out = request(conn, "GET", paths[name], headers)
                    times[name].append((time.perf_counter() - start) * 1e3)
                    assert status == 200, (name, status, out)
        base = statistics.median(times["open (no key)"])
        print(f"GET /v1/jobs/{{id}}, {per_round * args.rounds} requests per mode, one keep-alive connection each")
        print(f"{'mode':<16}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'p50 overhead':>14}")
        for name, t in times.items():
            t.sort()
            p50, p99 = statistics.median(t), t[int(len(t) * 0.99) - 1]
            print(f"{name:<16}{p50:>9.3f}{p99:>9.3f}{statistics.fmean(t):>9.3f}{(p50 - base) * 1e3:>11.0f} µs")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])


if __name__ == "__main__":
    main()
