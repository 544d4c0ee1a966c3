#!/usr/bin/env python3
"""OpenCV's own pipeline for YuNet + SFace (cv2.FaceDetectorYN, FaceRecognizerSF),
run over photos; prints one JSON object per face. The yardstick our Rust pipeline
is compared against. Usage: opencv_reference.py DETECTOR.onnx EMBEDDER.onnx PHOTO...
"""
import json
import sys

import cv2
import numpy as np

MAX_SIDE = 640  # same downscale rule as the Rust detector


def main():
    det_path, emb_path, *photos = sys.argv[1:]
    recognizer = cv2.FaceRecognizerSF.create(emb_path, "")
    for path in photos:
        img = cv2.imread(path)  # BGR, EXIF orientation applied
        h, w = img.shape[:2]
        scale = min(1.0, MAX_SIDE / max(w, h))
        # Rounds halves up, like the Rust side's f64::round.
        size = (int(w * scale + 0.5), int(h * scale + 0.5))
        small = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR) if scale < 1 else img
        sh, sw = small.shape[:2]
        detector = cv2.FaceDetectorYN.create(det_path, "", (sw, sh), 0.6, 0.3, 5000)
        _, faces = detector.detect(small)
        for f in faces if faces is not None else []:
            # Back to full-size pixels, in f64 then rounded to f32 like the Rust side.
            f = f.astype(np.float64)
            f[0:14:2] *= w / sw
            f[1:14:2] *= h / sh
            f = f.astype(np.float32)
            crop = recognizer.alignCrop(img, f)
            emb = recognizer.feature(crop).flatten()
            emb = emb / np.linalg.norm(emb)
            print(json.dumps({
                "photo": path,
                "bbox": [float(v) for v in f[0:4]],
                "landmarks": [[float(f[4 + 2 * i]), float(f[5 + 2 * i])] for i in range(5)],
                "score": float(f[14]),
                "embedding": [float(v) for v in emb],
            }))


if __name__ == "__main__":
    main()
