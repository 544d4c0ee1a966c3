#!/usr/bin/env python3
"""Chaos test: are jobs ever lost or done twice?

Starts an api and 3 workers (debug build, fresh database, private Redis db and
queue, short leases), a local webhook receiver, submits N jobs (register and
recognize, each with a callback_url), kills workers with SIGKILL at random
moments while submitting and while the backlog drains (restarting them),
stops one with SIGTERM under load, flushes the Redis database once, and
checks at the end: every job terminal,
none lost, no register job with two faces, every webhook delivered
successfully exactly once (a second success only if marked as a redelivery),
and every process exiting 0 on SIGTERM. Prints the counts and the time taken;
exits 1 on a failure.

Usage: scripts/chaos.py [-n 1000] [--workers 3]   (after `make test` built and fetched everything)
"""
import argparse, hashlib, hmac, http.server, json, os, random, signal, subprocess, sys, threading, time
import urllib.error, urllib.request, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "chaos-secret"
PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]


class Receiver(http.server.BaseHTTPRequestHandler):
    deliveries = {}  # job id -> list of (attempt, signature ok)
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        ts = self.headers.get("x-facerec-timestamp", "")
        expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, self.headers.get("x-facerec-signature", ""))
        with self.lock:
            self.deliveries.setdefault(json.loads(body)["job_id"], []).append(
                (int(self.headers.get("x-facerec-delivery-attempt", "0")), ok))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def multipart(fields, image):
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n'.encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url, data=None, content_type=None):
    req = urllib.request.Request(url, data=data, headers={"content-type": content_type} if content_type else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ)
    db = f"facerec_chaos_{os.getpid()}"
    base = env["DATABASE_URL"].rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/postgres", "-qc", f"CREATE DATABASE {db}"], check=True)
    redis_url = "redis://127.0.0.1:6379/9"
    env.update(DATABASE_URL=f"{base}/{db}", REDIS_URL=redis_url, FACEREC_QUEUE=f"facerec-chaos-{os.getpid()}",
               FACEREC_API_ADDR="127.0.0.1:18090", FACEREC_WEBHOOK_SECRET=SECRET, FACEREC_WEBHOOK_ALLOW_PRIVATE="true",
               FACEREC_JOB_LEASE_SECS="6", FACEREC_RECONCILE_SECS="2", FACEREC_REQUEUE_AFTER_SECS="8",
               FACEREC_WEBHOOK_BACKOFF_MS="500", FACEREC_WEBHOOK_TIMEOUT_SECS="2", FACEREC_MAX_QUEUED_JOBS="100000", RUST_LOG="warn")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    logs = open(os.path.join(ROOT, ".cache", "chaos.log"), "w")
    def spawn(name):
        p = subprocess.Popen([os.path.join(ROOT, "target/debug", name)], env=env, stdout=logs, stderr=logs)
        p.started = time.time()
        return p

    api, workers = spawn("facerec-api"), [spawn("facerec-worker") for _ in range(args.workers)]
    flushes = 0
    kills = []
    exits = []  # exit codes after SIGTERM (None: still running after 40 s)

    def stop(p):
        p.send_signal(signal.SIGTERM)
        try:
            exits.append(p.wait(timeout=40))
        except subprocess.TimeoutExpired:
            exits.append(None)
            p.kill()

    def kill_one():
        victim = random.randrange(len(workers))
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait()
        workers[victim] = spawn("facerec-worker")
        kills.append(victim)

    try:
        for _ in range(200):
            try:
                if request("http://127.0.0.1:18090/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        photos = [open(os.path.join(env.get("FACEREC_PHOTOS_DIR", "tests/fixtures/photos"), p), "rb").read() for p in PHOTOS]
        started = time.time()
        jobs = {}
        for i in range(args.n):
            kind = "register" if i % 2 == 0 else "recognize"
            fields = {"callback_url": hook, **({"subject": f"person-{i}"} if kind == "register" else {})}
            body, ctype = multipart(fields, photos[i % len(photos)])
            status, answer = request(f"http://127.0.0.1:18090/v1/{kind}", body, ctype)
            if status != 202:
                sys.exit(f"chaos: submission {i} refused: {status} {answer}")
            jobs[answer["job_id"]] = kind
            if i % max(1, args.n // 12) == 0 and i > 0:  # chaos while submitting and running
                kill_one()
            if i == args.n // 3:  # a graceful stop under load: jobs in hand finish, the rest stays queued
                oldest = min(range(len(workers)), key=lambda k: workers[k].started)
                stop(workers[oldest])
                workers[oldest] = spawn("facerec-worker")
            if i == args.n // 2:
                subprocess.run(["redis-cli", "-n", "9", "FLUSHDB"], check=True, stdout=subprocess.DEVNULL)
                flushes += 1
        submitted = time.time()
        drain_kills, last_kill = 0, time.time()
        while True:  # until every job has ended and every webhook has settled
            rows = subprocess.run(["psql", env["DATABASE_URL"], "-Atc",
                                   "SELECT count(*) FILTER (WHERE finished_at IS NULL), "
                                   "count(*) FILTER (WHERE webhook_status IS DISTINCT FROM 'delivered') FROM jobs"],
                                  capture_output=True, text=True, check=True).stdout.strip().split("|")
            if rows == ["0", "0"] or time.time() - submitted > 600:
                break
            # Keep killing while the backlog drains: jobs and deliveries in hand die with their worker.
            if rows[0] != "0" and drain_kills < max(2, args.n // 200) and time.time() - last_kill > 3:
                kill_one()
                drain_kills, last_kill = drain_kills + 1, time.time()
            time.sleep(1)
        elapsed = time.time() - started
        # A graceful stop (SIGTERM) must end every process cleanly within its deadline.
        for p in [api, *workers]:
            stop(p)
        q = lambda sql: subprocess.run(["psql", env["DATABASE_URL"], "-Atc", sql], capture_output=True, text=True,
                                       check=True).stdout.strip()
        terminal = int(q("SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL"))
        by_status = q("SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n FROM jobs GROUP BY 1) s")
        dup_faces = int(q("SELECT count(*) FROM (SELECT source_job_id FROM faces GROUP BY 1 HAVING count(*) > 1) d"))
        faces = int(q("SELECT count(*) FROM faces"))
        succeeded_registers = int(q("SELECT count(*) FROM jobs WHERE kind = 'register' AND status = 'succeeded'"))
        d = Receiver.deliveries
        missing = [j for j in jobs if j not in d]
        bad_signatures = sum(1 for v in d.values() for _, ok in v if not ok)
        # A repeated success must carry a new attempt number (a redelivery).
        unmarked_duplicates = sum(1 for v in d.values() if len({a for a, _ in v}) < len(v))
        redeliveries = sum(len(v) - 1 for v in d.values())
        lost = len(jobs) - terminal
        print(f"chaos: {len(jobs)} jobs ({by_status}), {args.workers} workers, {len(kills)} kill -9 "
              f"({drain_kills} while draining), {flushes} Redis flush, {elapsed:.1f} s")
        print(f"chaos: lost {lost}, duplicate faces {dup_faces}, faces {faces} for {succeeded_registers} registered, "
              f"webhooks missing {len(missing)}, redeliveries {redeliveries}, unmarked duplicates {unmarked_duplicates}, "
              f"bad signatures {bad_signatures}, exit codes after SIGTERM {exits}")
        ok = all(code == 0 for code in exits) and lost == 0 and dup_faces == 0 and faces == succeeded_registers and not missing and not bad_signatures \
            and not unmarked_duplicates
        print("chaos: " + ("PASS" if ok else "FAIL"))
        sys.exit(0 if ok else 1)
    finally:
        for p in [api, *workers]:
            p.kill()
        server.shutdown()
        subprocess.run(["psql", f"{base}/postgres", "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"])


if __name__ == "__main__":
    main()
