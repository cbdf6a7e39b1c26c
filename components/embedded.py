"""The embedded offline datasets (`shapes`, `digits`), written once as TFRecords for ExampleGen.

Each dataset is cut into the pipeline's three fixed splits and written as gzipped TFRecords of
`tf.train.Example{image: PNG bytes, label: int64}` under `<root>/<name>-<fingerprint>/<split>/`,
which ExampleGen reads through a sources.json plan (components/sources.py). Writing is idempotent:
an existing, complete copy is reused untouched, so its file fingerprints (and TFX's cache) stay
valid across runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil

import numpy as np
from PIL import Image

from simsiam_tfx.components import shapes
from simsiam_tfx.features import SPLITS, to_example

DIGITS_SPLIT = (997, 400, 400)  # of scikit-learn's 1,797 digits, in a fixed seeded order


@dataclasses.dataclass(frozen=True)
class EmbeddedData:
    input_base: str  # folder with one sub-folder per split
    num_classes: int
    counts: dict  # split -> number of examples


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _shapes(image_size: int, per_split, seed: int):
    images, labels = shapes.generate(sum(per_split), image_size, seed)
    return images, labels, len(shapes.CLASS_NAMES)


def _digits(seed: int):
    from sklearn.datasets import load_digits
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    # 0..16 grey levels -> 0..255, kept at the native 8x8 as grayscale: Transform upsamples.
    images = np.round(digits.images[order] * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target[order].astype(np.int64), 10


def materialize(dataset: str, root: str, image_size: int, shapes_per_split, seed: int) -> EmbeddedData:
    if dataset == "shapes":
        per_split, version = tuple(shapes_per_split), shapes.VERSION
        key = {"dataset": dataset, "version": version, "size": image_size, "split": per_split, "seed": seed}
    elif dataset == "digits":
        per_split = DIGITS_SPLIT
        key = {"dataset": dataset, "version": 1, "split": per_split, "seed": seed}
    else:
        raise ValueError(f"{dataset!r} is not an embedded dataset")
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    base = os.path.join(root, f"{dataset}-{fingerprint}")
    manifest_path = os.path.join(base, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        return EmbeddedData(base, manifest["num_classes"], manifest["counts"])

    import tensorflow as tf  # heavy: only when something must be written
    images, labels, num_classes = _shapes(image_size, per_split, seed) if dataset == "shapes" else _digits(seed)
    tmp = base + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    counts, start = {}, 0
    for split, n in zip(SPLITS, per_split):
        os.makedirs(os.path.join(tmp, split))
        path = os.path.join(tmp, split, "data.tfrecord.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for image, label in zip(images[start:start + n], labels[start:start + n]):
                writer.write(to_example(_png(image), int(label)))
        counts[split], start = n, start + n
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump({"key": key, "num_classes": num_classes, "counts": counts}, f, indent=2)
    shutil.rmtree(base, ignore_errors=True)
    os.replace(tmp, base)  # atomic: a crash never leaves a half-written copy that looks complete
    return EmbeddedData(base, num_classes, counts)
