#!/usr/bin/env python3
"""OpenCV's own pipeline for YuNet + SFace (cv2.FaceDetectorYN, FaceRecognizerSF)
as its users run it: the detector's input size is the photo's own size. Prints
one JSON object per face. The yardstick our Rust pipeline is compared against.
Usage: opencv_reference.py DETECTOR.onnx EMBEDDER.onnx PHOTO...
"""
import json
import sys

import cv2
import numpy as np


def main():
    det_path, emb_path, *photos = sys.argv[1:]
    recognizer = cv2.FaceRecognizerSF.create(emb_path, "")
    for path in photos:
        img = cv2.imread(path)  # BGR, EXIF orientation applied
        h, w = img.shape[:2]
        detector = cv2.FaceDetectorYN.create(det_path, "", (w, h), 0.6, 0.3, 5000)
        _, faces = detector.detect(img)
        for f in faces if faces is not None else []:
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
