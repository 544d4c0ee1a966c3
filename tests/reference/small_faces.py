#!/usr/bin/env python3
"""Small faces on a large canvas, and OpenCV's own pipeline on them.

`make OUT SIZE...`: for each face width SIZE (pixels, as YuNet boxes it),
writes OUT/canvas_SIZE.png, a 1920x1280 canvas holding every labelled test
portrait but the first of each person, shrunk so its face is SIZE pixels
wide, and OUT/canvas_SIZE.json with where each portrait went. The first
portrait of each person is the gallery (OUT/gallery.json), registered at its
own size.

`opencv DETECTOR.onnx EMBEDDER.onnx OUT`: OpenCV's pipeline as its users run
it (cv2.FaceDetectorYN with the input size set to the canvas's own size,
cv2.FaceRecognizerSF, 2 threads) on the gallery and every canvas; prints one
JSON line per canvas: {size, faces, found, identified, wrong, extra, inter_eye}.

The counting rule (shared with crates/vision/tests/small_faces.rs): a portrait
is found when a detected box's centre lies inside it, identified when that
face's best gallery match is its person at cosine >= THRESHOLD, wrong when it
is another person at that cosine; a detection inside no portrait is extra.
"""
import glob
import json
import os
import sys

import cv2
import numpy as np

CANVAS_W, CANVAS_H = 1920, 1280
THRESHOLD = 0.4  # FACEREC_DEFAULT_THRESHOLD
GAP = 24


def people(photos_dir):
    dirs = sorted(d for d in glob.glob(os.path.join(photos_dir, "johns", "*")) if os.path.isdir(d))
    return [(os.path.basename(d), sorted(glob.glob(os.path.join(d, "*.jpg")))) for d in dirs]


def detector(det_path, size):
    return cv2.FaceDetectorYN.create(det_path, "", size, 0.6, 0.3, 5000)


def detect(det_path, img):
    h, w = img.shape[:2]
    _, faces = detector(det_path, (w, h)).detect(img)
    return np.zeros((0, 15), np.float32) if faces is None else faces


def background(rng):
    """Smooth shading with texture, so the canvas is not a flat field."""
    y, x = np.mgrid[0:CANVAS_H, 0:CANVAS_W].astype(np.float32)
    base = 110 + 50 * np.sin(x / 170.0) * np.cos(y / 130.0)
    img = np.stack([base, base * 0.9 + 10, base * 0.8 + 20], axis=-1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make(out, sizes):
    det_path = os.environ["FACEREC_REFERENCE_DETECTOR_MODEL"]
    os.makedirs(out, exist_ok=True)
    persons = people(os.environ["FACEREC_PHOTOS_DIR"])
    gallery = [{"subject": name, "path": files[0]} for name, files in persons]
    with open(os.path.join(out, "gallery.json"), "w") as f:
        json.dump(gallery, f)
    portraits = []
    for name, files in persons:
        for path in files[1:]:
            img = cv2.imread(path)
            faces = detect(det_path, img)
            width = float(faces[np.argmax(faces[:, 2] * faces[:, 3]), 2])
            portraits.append((name, img, width))
    for size in sizes:
        rng = np.random.default_rng(size)
        canvas = background(rng)
        cells, x, y, row = [], GAP, GAP, 0
        for name, img, width in portraits:
            scale = size / width
            h, w = (max(1, round(v * scale)) for v in img.shape[:2])
            small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
            if x + w > CANVAS_W - GAP:
                x, y, row = GAP, y + row + GAP, 0
            if y + h > CANVAS_H - GAP:
                sys.exit(f"size {size}: the portraits do not fit on the canvas")
            canvas[y:y + h, x:x + w] = small
            cells.append({"subject": name, "x": x, "y": y, "width": w, "height": h})
            x, row = x + w + GAP, max(row, h)
        cv2.imwrite(os.path.join(out, f"canvas_{size}.png"), canvas)
        with open(os.path.join(out, f"canvas_{size}.json"), "w") as f:
            json.dump({"size": size, "cells": cells}, f)


def score(faces, embeddings, cells, gallery):
    found = identified = wrong = extra = 0
    inter_eye = []
    taken = set()
    for face, emb in zip(faces, embeddings):
        cx, cy = face[0] + face[2] / 2, face[1] + face[3] / 2
        cell = next((i for i, c in enumerate(cells)
                     if c["x"] <= cx <= c["x"] + c["width"] and c["y"] <= cy <= c["y"] + c["height"]), None)
        if cell is None:
            extra += 1
            continue
        if cell in taken:
            continue
        taken.add(cell)
        found += 1
        inter_eye.append(float(np.hypot(face[6] - face[4], face[7] - face[5])))
        sims = [float(emb @ g) for _, g in gallery]
        best = int(np.argmax(sims))
        if sims[best] >= THRESHOLD:
            if gallery[best][0] == cells[cell]["subject"]:
                identified += 1
            else:
                wrong += 1
    return found, identified, wrong, extra, inter_eye


def opencv(det_path, emb_path, out):
    cv2.setNumThreads(2)
    recognizer = cv2.FaceRecognizerSF.create(emb_path, "")

    def embed(img, face):
        e = recognizer.feature(recognizer.alignCrop(img, face)).flatten()
        return e / np.linalg.norm(e)

    gallery = []
    for g in json.load(open(os.path.join(out, "gallery.json"))):
        img = cv2.imread(g["path"])
        faces = detect(det_path, img)
        face = faces[np.argmax(faces[:, 2] * faces[:, 3])]
        gallery.append((g["subject"], embed(img, face)))
    for layout in sorted(glob.glob(os.path.join(out, "canvas_*.json"))):
        spec = json.load(open(layout))
        img = cv2.imread(layout[:-5] + ".png")
        faces = detect(det_path, img)
        embeddings = [embed(img, f) for f in faces]
        found, identified, wrong, extra, inter_eye = score(faces, embeddings, spec["cells"], gallery)
        print(json.dumps({"size": spec["size"], "faces": len(spec["cells"]), "found": found,
                          "identified": identified, "wrong": wrong, "extra": extra,
                          "inter_eye": float(np.mean(inter_eye)) if inter_eye else 0.0}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], [int(s) for s in sys.argv[3:]])
    elif sys.argv[1] == "opencv":
        opencv(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
