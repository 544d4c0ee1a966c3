#!/usr/bin/env python3
"""Side by side (`make bench-peer`): facerec end to end against OpenCV's own
YuNet + SFace pipeline and the face_recognition library (dlib), on the same
20 photos, in one run, on this machine.

- facerec: the release api and one worker with no settings (the defaults), a
  private database and queue; every photo is sent to POST /v1/recognize (a
  gallery of 7 people) by 8 clients on kept-alive connections, each polling
  GET /v1/jobs/{id} every 50 ms until the job ends: HTTP, queue, decode,
  detection, embedding, search, database. The clients run on the same 2 cores.
- OpenCV: as its users run it, cv2.FaceDetectorYN with the input size set to
  each photo's own size, cv2.FaceRecognizerSF on every face, 2 threads
  (cv2.setNumThreads), photos decoded from memory with cv2.imdecode.
- face_recognition: load_image_file, face_locations (its default HOG
  detector), face_encodings, as in its README; in .cache/peervenv when
  scripts/peer_venv.sh could build it, else skipped with the reason.

The photos: the 7 test portraits, the 1280-px group photo and the same at
1920 px, 6 synthetic 1920x1280 group photos (10 labelled portraits each,
faces 28-96 px wide, on a textured background) and 5 150-px face chips.
Prints images/s and faces found for each, and facerec's ratio to each peer.
Usage: bench_peer.py [--rounds 5] [--clients 8] [--poll-ms 50] [--dlib-rounds 1] [--set VAR=VALUE] [--limit N]
"""

import argparse
import concurrent.futures as cf
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np

from bench_ingest import CpuMeter, cpu_line, psql

ROOT = Path(__file__).resolve().parent.parent
# The binaries run (scripts/smoke_commands.sh points it at target/debug).
BIN = ROOT / os.environ.get("FACEREC_BIN_DIR", "target/release")
PHOTOS = Path(os.environ.get("FACEREC_PHOTOS_DIR", ROOT / "tests" / "fixtures" / "photos"))
ADDR = "127.0.0.1:18088"
API = f"http://{ADDR}"
OUT = ROOT / ".cache" / "bench-peer"


def textured(rng, w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 110 + 50 * np.sin(x / 170.0 + rng.uniform(0, 6)) * np.cos(y / 130.0 + rng.uniform(0, 6))
    img = np.stack([base, base * 0.9 + 10, base * 0.8 + 20], axis=-1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def build_photos():
    """The 20 photos, written once under .cache/bench-peer; returns (name, bytes)."""
    OUT.mkdir(parents=True, exist_ok=True)
    names = ["biden.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg",
             "obama_partial_face2.jpg", "32bit.png", "group/t1.jpg"]
    photos = [(n, (PHOTOS / n).read_bytes()) for n in names]
    big = OUT / "t1_1920.jpg"
    chips = sorted((PHOTOS / "johns").glob("*/*.jpg"))
    if not big.exists():
        t1 = cv2.imread(str(PHOTOS / "group" / "t1.jpg"))
        cv2.imwrite(str(big), cv2.resize(t1, (1920, round(t1.shape[0] * 1920 / t1.shape[1])),
                                          interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 90])
        rng = np.random.default_rng(12)
        for g in range(6):
            canvas = textured(rng, 1920, 1280)
            for i in range(10):
                chip = cv2.imread(str(chips[rng.integers(len(chips))]))
                face = int(rng.integers(28, 97))
                side = round(150 * face / 122)  # the chips' faces are about 122 of 150 px wide
                small = cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA)
                col, row = i % 5, i // 5
                x = 40 + col * 370 + int(rng.integers(0, 370 - side - 40))
                y = 80 + row * 600 + int(rng.integers(0, 560 - side))
                canvas[y:y + side, x:x + side] = small
            cv2.imwrite(str(OUT / f"group_{g}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    photos.append(("t1_1920.jpg", big.read_bytes()))
    photos += [(f"group_{g}.jpg", (OUT / f"group_{g}.jpg").read_bytes()) for g in range(6)]
    firsts = [sorted(d.glob("*.jpg"))[1] for d in sorted((PHOTOS / "johns").iterdir()) if d.is_dir()]
    photos += [(str(p.relative_to(PHOTOS)), p.read_bytes()) for p in firsts]
    return photos


def gallery():
    """(subject, path): who recognize searches for."""
    people = [(d.name, sorted(d.glob("*.jpg"))[0]) for d in sorted((PHOTOS / "johns").iterdir()) if d.is_dir()]
    return people + [("obama", PHOTOS / "obama.jpg"), ("biden", PHOTOS / "biden.jpg")]


_local = threading.local()


def request(method, path, body=None, headers=None):
    """One request on this thread's kept-alive connection (as any HTTP client
    library does), reconnecting once if the server closed it."""
    for attempt in (0, 1):
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = http.client.HTTPConnection(ADDR, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
            return json.loads(data)
        except (http.client.HTTPException, ConnectionError):
            conn.close()
            _local.conn = None
            if attempt:
                raise


def post(path, fields, image):
    boundary = uuid.uuid4().hex
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return request("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def get(path):
    return request("GET", path)


POLL_SECS = 0.02


def run_job(path, fields, image):
    job = post(path, fields, image)
    while job["status"] in ("queued", "processing"):
        time.sleep(POLL_SECS)
        job = get(f"/v1/jobs/{job['job_id']}")
    if job["status"] != "succeeded":
        raise RuntimeError(f"job failed: {job}")
    return job


def bench_facerec(photos, rounds, clients, settings=()):
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    db = "facerec_bench_peer"
    psql(server + "/postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    psql(server + "/postgres", f"CREATE DATABASE {db}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEREC_") or k.endswith("_MODEL")
           or k in ("FACEREC_ROOT", "FACEREC_PHOTOS_DIR")}
    env.update(DATABASE_URL=f"{server}/{db}", FACEREC_API_ADDR=ADDR, FACEREC_QUEUE=f"facerec-bench-peer-{os.getpid()}",
               RUST_LOG="warn")
    env.update(kv.split("=", 1) for kv in settings)
    procs = [subprocess.Popen([BIN / "facerec-api"], env=env)]
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(API + "/readyz", timeout=5).read()
                break
            except Exception:
                time.sleep(0.1)
        procs.append(subprocess.Popen([BIN / "facerec-worker"], env=env))
        for subject, path in gallery():
            run_job("/v1/register", {"collection": "peer", "subject": subject}, path.read_bytes())
        work = [img for _, img in photos]
        fields = {"collection": "peer"}
        cpu = CpuMeter()
        with cf.ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda img: run_job("/v1/recognize", fields, img), work))  # warm-up, not counted
            cpu.start()
            t0 = time.perf_counter()
            jobs = list(pool.map(lambda img: run_job("/v1/recognize", fields, img), work * rounds))
            secs = time.perf_counter() - t0
        cpu.stop = True
        print("  " + cpu_line(cpu.seconds(), len(work) * rounds, secs).replace("cli", "bench client"))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        psql(server + "/postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    faces = sum(len(j["result"]["faces"]) + len(j["result"]["skipped"]) for j in jobs[:len(photos)])
    return len(work) * rounds / secs, faces


def bench_opencv(photos, rounds):
    cv2.setNumThreads(2)
    det = cv2.FaceDetectorYN.create(os.environ["FACEREC_REFERENCE_DETECTOR_MODEL"], "", (320, 320), 0.6, 0.3, 5000)
    rec = cv2.FaceRecognizerSF.create(os.environ["FACEREC_REFERENCE_EMBEDDER_MODEL"], "")

    def recognize(data):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        det.setInputSize((w, h))
        _, faces = det.detect(img)
        faces = [] if faces is None else faces
        for f in faces:
            rec.feature(rec.alignCrop(img, f))
        return len(faces)

    found = sum(recognize(d) for _, d in photos)  # warm-up, not counted
    t0 = time.perf_counter()
    for _ in range(rounds):
        for _, d in photos:
            recognize(d)
    return len(photos) * rounds / (time.perf_counter() - t0), found


DLIB = r"""
import io, sys, time, face_recognition
paths, rounds = sys.argv[1:-1], int(sys.argv[-1])
photos = [open(p, "rb").read() for p in paths]
def recognize(data):
    img = face_recognition.load_image_file(io.BytesIO(data))
    locations = face_recognition.face_locations(img)
    face_recognition.face_encodings(img, locations)
    return len(locations)
found = sum(recognize(d) for d in photos)
t0 = time.perf_counter()
for _ in range(rounds):
    for d in photos:
        recognize(d)
print(len(photos) * rounds / (time.perf_counter() - t0), found)
"""


def bench_dlib(photos, rounds):
    python = ROOT / ".cache" / "peervenv" / "bin" / "python"
    made = subprocess.run(["bash", str(ROOT / "scripts" / "peer_venv.sh")], capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"skipped: scripts/peer_venv.sh failed: {made.stderr.strip()[-300:]}"
    paths = []
    for name, data in photos:
        path = OUT / "photos" / name.replace("/", "_")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(str(path))
    out = subprocess.run([str(python), "-c", DLIB, *paths, str(rounds)], capture_output=True, text=True)
    if out.returncode != 0:
        return None, f"skipped: {out.stderr.strip()[-300:]}"
    rate, found = out.stdout.split()
    return (float(rate), int(found)), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--dlib-rounds", type=int, default=1, help="0 skips face_recognition")
    ap.add_argument("--poll-ms", type=float, default=50, help="how often each client polls its job")
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                    help="a facerec setting for this run (the defaults otherwise), e.g. FACEREC_DETECT_MIN_FACE_PX=16")
    ap.add_argument("--limit", type=int, default=0,
                    help="only the first N photos (a quick check that the benchmark runs; 0: all 20)")
    args = ap.parse_args()
    global POLL_SECS
    POLL_SECS = args.poll_ms / 1000
    photos = build_photos()
    if args.limit > 0:
        photos = photos[:args.limit]
    pixels = sum(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR).size // 3 for _, d in photos)
    print(f"{len(photos)} photos, {pixels / len(photos) / 1e6:.2f} Mpx on average; {os.cpu_count()} cores")
    ours, our_faces = bench_facerec(photos, args.rounds, args.clients, args.set)
    label = ("defaults" if not args.set else " ".join(args.set)) + f", {args.clients} clients polling every {args.poll_ms:g} ms"
    print(f"facerec (end to end, {label})      {ours:6.2f} images/s, {our_faces} faces")
    cv_rate, cv_faces = bench_opencv(photos, args.rounds)
    print(f"OpenCV YuNet + SFace (2 threads)    {cv_rate:6.2f} images/s, {cv_faces} faces   facerec is {ours / cv_rate:.2f}x")
    if args.dlib_rounds > 0:
        result, why = bench_dlib(photos, args.dlib_rounds)
        if result:
            rate, faces = result
            print(f"face_recognition (dlib, HOG)        {rate:6.2f} images/s, {faces} faces   facerec is {ours / rate:.2f}x")
        else:
            print(f"face_recognition (dlib): {why}")


if __name__ == "__main__":
    main()
