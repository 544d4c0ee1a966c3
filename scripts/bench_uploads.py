#!/usr/bin/env python3
"""100 clients (--clients) upload a 10 MiB (--mib) JPEG at once (`make bench-submit` step 2):
prints what they were answered, the api's peak RSS while they ran and its
RSS five seconds later. Runs under the reference venv (OpenCV for the image)."""

import argparse
import collections
import http.client
import json
import threading
import time
import urllib.parse

import cv2
import numpy as np


def big_jpeg(limit):
    """A noisy JPEG just under `limit` bytes (noise does not compress)."""
    rng = np.random.default_rng(1)
    side = max(64, int(2000 * (limit / (10 * 2**20)) ** 0.5))  # 2000 for 10 MiB; fewer tries for other sizes
    while True:
        img = rng.integers(0, 255, (side, side * 4 // 3, 3), dtype=np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        data = buf.tobytes()
        if len(data) <= limit:
            if len(data) > limit * 0.9:
                return data
            side = int(side * 1.04)
        else:
            side = int(side * 0.97)


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--api", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--mib", type=float, default=10, help="size of the upload, just under this many MiB")
    args = ap.parse_args()
    image = big_jpeg(int(args.mib * 1024 * 1024) - 4096)
    boundary = "facerecbench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"subject\"\r\n\r\nbig\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    url = urllib.parse.urlparse(args.api)
    answers = collections.Counter()
    peak = [rss_mib(args.pid)]
    before = peak[0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib(args.pid))
            time.sleep(0.02)

    def upload():
        try:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
            conn.request("POST", "/v1/register", body=body,
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            resp = conn.getresponse()
            payload = resp.read()
            code = json.loads(payload)["error"]["code"] if resp.status >= 400 else ""
            answers[f"{resp.status} {code}".strip()] += 1
        except Exception as e:  # a reset connection counts as what it is
            answers[f"error {type(e).__name__}"] += 1

    threading.Thread(target=sample, daemon=True).start()
    threads = [threading.Thread(target=upload) for _ in range(args.clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.time() - t0
    done.set()
    time.sleep(5)
    print(f"   {args.clients} uploads of {len(image) / 2**20:.2f} MiB in {secs:.1f} s: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())))
    print(f"   api RSS: {before:.0f} MiB before, peak {peak[0]:.0f} MiB, {rss_mib(args.pid):.0f} MiB 5 s after")


if __name__ == "__main__":
    main()
