"""The embedded offline datasets (`shapes`, `digits`), written once as TFRecords for ExampleGen.

Each dataset is cut into the pipeline's three fixed splits and written as gzipped TFRecords of
`tf.train.Example{image: PNG bytes, label: int64}` under `<root>/<name>-<fingerprint>/<split>/`,
which ExampleGen reads through a sources.json plan (components/source_plan.py). Writing is idempotent:
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
    class_names: list[str]  # label order
    counts: dict  # split -> number of examples


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _digits(seed: int):
    from sklearn.datasets import load_digits
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    # 0..16 grey levels -> 0..255, kept at the native 8x8 as grayscale: Transform upsamples.
    images = np.round(digits.images[order] * (255.0 / 16.0)).astype(np.uint8)
    return images, digits.target[order].astype(np.int64), 10


class _Shapes:
    class_names = tuple(shapes.CLASS_NAMES)

    @staticmethod
    def identity(image_size: int, shapes_per_split, seed: int) -> tuple[tuple[int, ...], dict]:
        """(examples per split, what names the copy: a change makes a new one)."""
        per_split = tuple(shapes_per_split)
        return per_split, {"dataset": "shapes", "version": shapes.VERSION, "size": image_size, "split": per_split,
                           "seed": seed}

    @staticmethod
    def images(image_size: int, per_split, seed: int):
        return shapes.generate(sum(per_split), image_size, seed)


class _Digits:
    class_names = tuple(str(i) for i in range(10))

    @staticmethod
    def identity(image_size: int, shapes_per_split, seed: int) -> tuple[tuple[int, ...], dict]:
        return DIGITS_SPLIT, {"dataset": "digits", "version": 1, "split": DIGITS_SPLIT, "seed": seed}

    @staticmethod
    def images(image_size: int, per_split, seed: int):
        return _digits(seed)[:2]


# Each of registries.EMBEDDED_DATASETS, made (tests/simsiam_tfx/test_registries.py ties the two).
MAKERS = {"shapes": _Shapes, "digits": _Digits}


def materialize(dataset: str, root: str, image_size: int, shapes_per_split, seed: int) -> EmbeddedData:
    maker = MAKERS[dataset]
    per_split, key = maker.identity(image_size, shapes_per_split, seed)
    fingerprint = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    base = os.path.join(root, f"{dataset}-{fingerprint}")
    manifest_path = os.path.join(base, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        return EmbeddedData(base, list(maker.class_names), manifest["counts"])

    import tensorflow as tf  # heavy: only when something must be written
    images, labels = maker.images(image_size, per_split, seed)
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
        json.dump({"key": key, "num_classes": len(maker.class_names), "counts": counts}, f, indent=2)
    shutil.rmtree(base, ignore_errors=True)
    os.replace(tmp, base)  # atomic: a crash never leaves a half-written copy that looks complete
    return EmbeddedData(base, list(maker.class_names), counts)
