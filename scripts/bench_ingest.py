#!/usr/bin/env python3
"""Ingestion benchmark (`make bench-ingest`): N labelled images built from the
fetched test photos (flips, crops, brightness, re-encoding; each labelled by
its source person) are ingested once with the `facerec` CLI and once as an
archive batch, against the release api and 1 (then 2) worker processes on a
private database and queue. Prints images/s for each, the worker pipeline's
own images/s on the same images (the ceiling: no HTTP, queue or database),
the peak RSS of the api, the workers and the CLI, each process's CPU, and
where the batch waited besides inference (its `waits:` line).

The ceiling is measured before, between and after the two ingestions, and
each ingestion is compared with the mean of the two around it: on a shared
VM the pipeline alone drifts by up to ±6 % from one minute to the next.

Runs under the reference venv's Python (OpenCV and numpy for the images).
Usage: bench_ingest.py [-n 2000] [--workers 1,2] [--concurrency 16]
"""

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# The binaries and examples run (scripts/smoke_commands.sh points it at target/debug).
BIN = ROOT / os.environ.get("FACEREC_BIN_DIR", "target/release")
PHOTOS = Path(os.environ.get("FACEREC_PHOTOS_DIR", ROOT / "tests" / "fixtures" / "photos"))
ADDR = "127.0.0.1:18087"
API = f"http://{ADDR}"


def sources():
    """(person, path) of every labelled test photo with one face."""
    out = [(p.parent.name, p) for p in sorted((PHOTOS / "johns").glob("*/*.jpg"))]
    out += [("Barack_Obama", PHOTOS / f) for f in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    out += [("Joe_Biden", PHOTOS / "biden.jpg")]
    return out


def augment(img, rng):
    if rng.random() < 0.5:
        img = cv2.flip(img, 1)
    h, w = img.shape[:2]
    dx, dy = int(w * rng.uniform(0, 0.08)), int(h * rng.uniform(0, 0.08))
    img = img[dy : h - int(h * rng.uniform(0, 0.08)), dx : w - int(w * rng.uniform(0, 0.08))]
    alpha, beta = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    return cv2.convertScaleAbs(img, alpha=alpha, beta=beta)


def build_dataset(n, seed=7):
    folder = ROOT / ".cache" / "bench-ingest" / f"n{n}"
    archive = folder.with_suffix(".zip")
    if archive.exists():
        return folder, archive
    rng = random.Random(seed)
    srcs = [(person, cv2.imread(str(path))) for person, path in sources()]
    for i in range(n):
        person, img = srcs[i % len(srcs)]
        out = augment(img, rng)
        (folder / person).mkdir(parents=True, exist_ok=True)
        if rng.random() < 0.15:
            cv2.imwrite(str(folder / person / f"{i:06d}.png"), out)
        else:
            cv2.imwrite(str(folder / person / f"{i:06d}.jpg"), out, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(70, 95)])
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
    tmp.rename(archive)
    return folder, archive


class PeakRss:
    """Samples VmRSS of some processes every 50 ms; keeps each one's peak (MiB)."""

    def __init__(self):
        self.pids, self.peak, self.stop = {}, {}, False
        threading.Thread(target=self.run, daemon=True).start()

    def watch(self, name, pid):
        self.pids[name] = pid
        self.peak[name] = 0.0

    def reset(self):
        for name in self.peak:
            self.peak[name] = 0.0

    def run(self):
        while not self.stop:
            for name, pid in list(self.pids.items()):
                try:
                    for line in open(f"/proc/{pid}/status"):
                        if line.startswith("VmRSS:"):
                            self.peak[name] = max(self.peak[name], int(line.split()[1]) / 1024)
                except OSError:
                    pass
            time.sleep(0.05)


class CpuMeter:
    """CPU seconds spent by every process on the machine while it runs, by
    program (api, workers, CLI, PostgreSQL, Redis, the rest): where the two
    cores go besides the pipeline. Samples /proc every second (the scan itself
    costs CPU that the runs measured would otherwise have); a process
    that exits keeps what it was last seen to use."""

    GROUPS = {"facerec-api": "api", "facerec-worker": "worker", "facerec": "cli", "postgres": "postgres",
              "redis-server": "redis", "curl": "curl"}

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK")
        self.seen, self.base, self.stop = {}, {}, False
        threading.Thread(target=self.run, daemon=True).start()

    def sample(self):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            # utime, stime (fields 14, 15), and the start time tells reused pids apart.
            self.seen[(d, fields[19])] = (self.GROUPS.get(comm, "other"), int(fields[11]) + int(fields[12]))

    def run(self):
        while not self.stop:
            self.sample()
            time.sleep(1.0)

    def start(self):
        self.sample()
        self.base = {k: t for k, (_, t) in self.seen.items()}

    def seconds(self):
        """CPU seconds by group since `start`."""
        self.sample()
        out = {}
        for key, (group, t) in self.seen.items():
            out[group] = out.get(group, 0.0) + (t - self.base.get(key, 0)) / self.tick
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def cpu_line(seconds, n, wall, pipelines=None, ceiling=None):
    """Where the CPU went, and, given the pipeline alone's rate (`ceiling`, with
    `pipelines` running flat out: pipelines / rate seconds per image), the
    workers' CPU per image beside the pipeline alone's. The second is the
    steadier measure of the service's own cost: the ratio of rates also moves
    with how busy the workers' cores were kept. bench_peer.py has no ceiling."""
    total = sum(seconds.values())
    parts = ", ".join(f"{g} {s:.1f}" for g, s in seconds.items() if s >= 0.05)
    line = (f"CPU s: {parts} (total {total:.1f} of {wall * (os.cpu_count() or 1):.1f} available; "
            f"{1000 * total / n:.0f} ms per image)")
    if not ceiling:
        return line
    workers_ms, alone_ms = 1000 * seconds.get("worker", 0.0) / n, 1000 * pipelines / ceiling
    return (line + "\n"
            f"         workers' CPU per image {workers_ms:.2f} ms, the pipeline alone's {alone_ms:.2f} ms "
            f"({100 * (workers_ms / alone_ms - 1):+.0f} %)")


def get(path):
    with urllib.request.urlopen(API + path, timeout=30) as r:
        return json.load(r)


def wait_ready():
    for _ in range(600):
        try:
            get("/readyz")
            return
        except Exception:
            time.sleep(0.1)
    sys.exit("the api did not become ready")


def drop_queue(redis_url, queue):
    """Deletes the Redis keys of the bench's private queue, as its database is dropped."""
    keys = subprocess.run(["redis-cli", "-u", redis_url, "--scan", "--pattern", f"{queue}:*"],
                          check=True, capture_output=True, text=True).stdout.split()
    for i in range(0, len(keys), 1000):
        subprocess.run(["redis-cli", "-u", redis_url, "DEL", *keys[i : i + 1000]], check=True, capture_output=True)


def psql(db_url, sql):
    """Runs `sql`; returns its rows' fields (unaligned, space-separated)."""
    return subprocess.run(["psql", "-q", "-At", "-F", " ", "-v", "ON_ERROR_STOP=1", db_url, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.split()


def batch_waits(db_url, batch_id):
    """Where a batch waited besides inference, from its own and its jobs' rows:
    from the start of its recording to its first job fed, from then to the
    first claim, and from its last job's end to its own."""
    waits = psql(db_url, f"""SELECT round(extract(epoch FROM min(j.created_at) - b.created_at), 3),
                                    round(extract(epoch FROM min(j.started_at) - min(j.created_at)), 3),
                                    round(extract(epoch FROM b.finished_at - max(j.finished_at)), 3)
                             FROM batches b JOIN jobs j ON j.batch_id = b.id WHERE b.id = '{batch_id}'
                             GROUP BY b.id""")
    return ("waits: recording started -> first job fed {} s, fed -> first claim {} s, "
            "last job ended -> batch ended {} s").format(*waits)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--concurrency", type=int, default=16, help="the CLI's --concurrency")
    ap.add_argument("--pin", action="store_true",
                    help="one worker process with one pipeline on the last core, alone; PostgreSQL, Redis, the api "
                         "and the CLI on the other cores (as when the database is not on the workers' machine)")
    args = ap.parse_args()

    folder, archive = build_dataset(args.n)
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    print(f"dataset: {len(files)} images of {len({Path(f).parent.name for f in files})} people, "
          f"{archive.stat().st_size / 2**20:.0f} MiB zip ({folder})")

    # The server part of DATABASE_URL; its query (sslmode=…) goes with every database named.
    base, _, query = os.environ["DATABASE_URL"].partition("?")
    server = base.rsplit("/", 1)[0]
    db = "facerec_bench_ingest"
    on = (lambda name: f"{server}/{name}" + (f"?{query}" if query else ""))
    cores = os.cpu_count() or 2
    worker_cpus, service_cpus = [], []
    if args.pin:
        if cores < 2:
            sys.exit("--pin needs at least 2 cores")
        worker_cpus, service_cpus = ["taskset", "-c", f"{cores - 1}"], ["taskset", "-c", f"0-{cores - 2}"]
        # This process too (and the sampling threads started below): its
        # polling of the batch and of /proc took up to several % of the
        # workers' core, and so of the ingestion measured there.
        os.sched_setaffinity(0, range(cores - 1))
        pin_servers(f"0-{cores - 2}")
        args.workers = "1"
        cores = 1  # what the workers (and the ceiling) get
    rss = PeakRss()
    cpu = CpuMeter()
    try:
        run_sizes(args, folder, archive, files, on, db, rss, cpu, cores, worker_cpus, service_cpus)
    finally:
        if args.pin:
            pin_servers(f"0-{(os.cpu_count() or 2) - 1}")
        rss.stop = cpu.stop = True
        # Also when a run failed: a later run (or make smoke) starts from no database.
        psql(on("postgres"), f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def pin_servers(cpus):
    """Moves every PostgreSQL and Redis process (and the threads and backends
    they start later) onto `cpus`."""
    for name in ("postgres", "redis-server"):
        pids = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, pid], check=True, capture_output=True)


def run_sizes(args, folder, archive, files, on, db, rss, cpu, cores, worker_cpus, service_cpus):
    for workers in [int(w) for w in args.workers.split(",")]:
        psql(on("postgres"), f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        psql(on("postgres"), f"CREATE DATABASE {db}")
        env = dict(os.environ, DATABASE_URL=on(db), FACEREC_API_ADDR=ADDR,
                   FACEREC_QUEUE=f"facerec-bench-ingest-{os.getpid()}", FACEREC_LOG="warn",
                   RUST_LOG="warn", FACEREC_INTRA_THREADS="1",
                   # One pipeline per core in all, split between the processes.
                   FACEREC_WORKER_CONCURRENCY=str(max(1, cores // workers)))
        procs = [subprocess.Popen([*service_cpus, BIN / "facerec-api"], env=env)]
        wait_ready()
        procs += [subprocess.Popen([*worker_cpus, BIN / "facerec-worker"], env=env) for _ in range(workers)]
        rss.watch("api", procs[0].pid)
        for i, p in enumerate(procs[1:]):
            rss.watch(f"worker{i}", p.pid)
        time.sleep(3)  # models loaded
        pipelines = max(1, cores // workers) * workers  # as FACEREC_WORKER_CONCURRENCY splits them

        def pipeline_alone():
            line = subprocess.run(
                [*worker_cpus, BIN / "examples" / "throughput", "--concurrency", str(pipelines), *files],
                env=env, check=True, capture_output=True, text=True).stdout.strip()
            return line, float(line.split("=")[1].split()[0])

        try:
            ceiling, before = pipeline_alone()

            rss.reset()
            cpu.start()
            t0 = time.time()
            cli = subprocess.Popen([*service_cpus, BIN / "facerec", "ingest", str(folder), "--collection", "cli", "--api", API,
                                    "--concurrency", str(args.concurrency), "--quiet"], env=env)
            rss.watch("cli", cli.pid)
            code = cli.wait()
            cli_secs = time.time() - t0
            cli_cpu = cpu.seconds()
            cli_peaks = dict(rss.peak)
            del rss.pids["cli"]
            _, between = pipeline_alone()

            rss.reset()
            cpu.start()
            t0 = time.time()
            posted = subprocess.run([*service_cpus, "curl", "-sS", "-F", f"archive=@{archive}", "-F", "collection=batch",
                                     API + "/v1/batches"], check=True, capture_output=True, text=True)
            batch = json.loads(posted.stdout)
            upload_secs = time.time() - t0
            while batch.get("status") == "running":
                time.sleep(0.05)  # the end is seen within 50 ms, not 200
                batch = get(f"/v1/batches/{batch['batch_id']}")
            batch_secs = time.time() - t0
            batch_cpu = cpu.seconds()
            batch_peaks = dict(rss.peak)
            _, after = pipeline_alone()
            waits = batch_waits(env["DATABASE_URL"], batch["batch_id"])
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
            drop_queue(env["REDIS_URL"], env["FACEREC_QUEUE"])
        n = len(files)
        cli_ceiling, batch_ceiling = (before + between) / 2, (between + after) / 2
        print(f"\n{workers} worker process(es), pipeline alone before: {ceiling}")
        print(f"  pipeline alone before, between and after: {before:.1f}, {between:.1f}, {after:.1f} images/s")
        print(f"  cli    {n / cli_secs:6.1f} images/s ({100 * n / cli_secs / cli_ceiling:.0f} % of the pipeline's "
              f"{cli_ceiling:.1f}) "
              f"in {cli_secs:.1f} s, exit {code}; peak RSS MiB: "
              + ", ".join(f"{k} {v:.0f}" for k, v in cli_peaks.items()))
        print("         " + cpu_line(cli_cpu, n, cli_secs, pipelines, cli_ceiling))
        print(f"  batch  {n / batch_secs:6.1f} images/s ({100 * n / batch_secs / batch_ceiling:.0f} % of the pipeline's "
              f"{batch_ceiling:.1f}) "
              f"in {batch_secs:.1f} s (upload + recording {upload_secs:.1f} s); counts {batch['counts']}; "
              "peak RSS MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in batch_peaks.items() if k != "cli"))
        print("         " + cpu_line(batch_cpu, n, batch_secs, pipelines, batch_ceiling))
        print("         " + waits)


if __name__ == "__main__":
    main()
