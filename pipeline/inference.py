"""`simsiam-tfx embed` and `predict`: images -> embeddings / class predictions with a run's model.

Images come from a folder (recursively), a glob, a TFRecord file of tf.Examples or one image file,
one at a time; each is checked exactly as ExampleGen checks it (components/image_check.py: kept,
converted, or skipped with a named reason), sent through the model in batches, and the results are
written out as they come: memory stays flat however many images there are.

Models: a pushed model (or LinearProbe's) through its `serve_image_bytes` signature (Transform graph
included), or SimSiamPretrain's exported encoder (embeddings only), fed by the Transform module's own
decode-and-resize.
"""
from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import sys
import tempfile
from typing import Callable, Iterator

import numpy as np

from simsiam_tfx import contract
from simsiam_tfx.config import ConfigError
from simsiam_tfx.features import IMAGE_KEY, PREDICTION_KEY

EMBED_FORMATS = ("npy", "parquet", "csv")
PREDICT_FORMATS = ("csv", "jsonl")
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz")


# ---- the model ----------------------------------------------------------------------------

def newest_pushed_model(output_dir: str) -> str:
    """The newest complete version under <output>/serving_model/ (never a push still staged)."""
    from simsiam_tfx.components.model_record import newest_pushed
    root = os.path.join(output_dir, "serving_model")
    newest = newest_pushed(root)
    if newest is None:
        raise ConfigError(f"no pushed model under {root}; pass --model (a pushed model or a SavedModel from a run)")
    return newest.path


class Model:
    """`run(image_bytes list) -> dict of numpy arrays` with 'embedding' and, for a served model,
    'probabilities', 'class_id', 'class_name'."""

    def __init__(self, path: str):
        import tensorflow as tf
        if not os.path.exists(os.path.join(path, contract.SAVED_MODEL_FILE)):
            raise ConfigError(f"{path} is not a SavedModel (no saved_model.pb)")
        self.path = path
        loaded = tf.saved_model.load(path)
        if "serve_image_bytes" in loaded.signatures:
            self._serve, self.classifies = loaded.signatures["serve_image_bytes"], True
        else:
            self._encoder, self.classifies = self._as_encoder(path), False
        self._loaded = loaded

    @staticmethod
    def _as_encoder(path: str):
        import tf_keras as keras
        try:
            encoder = keras.models.load_model(path, compile=False)
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"{path} has no serve_image_bytes signature and is not a Keras encoder ({e})") from None
        shape = encoder.input_shape
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ConfigError(f"{path}: expected an image encoder (None, S, S, 3), got input {shape}")
        return encoder

    def run(self, images: list[bytes]) -> dict[str, np.ndarray]:
        import tensorflow as tf
        if self.classifies:
            out = self._serve(image_bytes=tf.constant(images))
            return {k: v.numpy() for k, v in out.items()}
        from simsiam_tfx.trainer import data
        size = self._encoder.input_shape[1]
        pixels = tf.stack([data.to_float(data.decode_and_resize(tf.constant(b), size)) for b in images])
        return {"embedding": self._encoder(pixels, training=False).numpy()}


# ---- the images ---------------------------------------------------------------------------

def _is_tfrecord(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(_TFRECORD_SUFFIXES)


def list_items(source: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, read) for every candidate image of `source`, lazily: nothing is read until `read()`."""
    if os.path.isdir(source):
        for root, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(root, name)
                yield path, _reader(path)
    elif _is_tfrecord(source):
        yield from _tfrecord_items(source)
    elif os.path.isfile(source):
        yield source, _reader(source)
    else:
        matches = sorted(glob.glob(source, recursive=True))
        if not matches:
            raise ConfigError(f"{source}: no such folder, file or glob match")
        for path in matches:
            if os.path.isfile(path):
                yield path, _reader(path)


def _reader(path: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with open(path, "rb") as f:
            return f.read()
    return read


def _tfrecord_items(path: str, image_key: str = IMAGE_KEY):
    import tensorflow as tf
    compression = "GZIP" if path.lower().endswith(".gz") else ""
    for index, record in enumerate(tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator()):
        example = tf.train.Example.FromString(record)
        values = example.features.feature[image_key].bytes_list.value
        data = values[0] if values else b""
        yield f"{path}#{index}", (lambda data=data: data)


def checked_batches(source: str, batch_size: int, on_skip: Callable[[str, str], None]):
    """Batches of (names, image bytes) of the images the pipeline accepts; the others are passed
    to `on_skip(name, reason)`."""
    from simsiam_tfx.components import image_check
    names, images = [], []
    for name, read in list_items(source):
        try:
            data = read()
        except OSError as e:
            on_skip(name, f"unreadable ({e.strerror or e})")
            continue
        image, reason = image_check.check(data)
        if image is None:
            on_skip(name, reason)
            continue
        names.append(name)
        images.append(image)
        if len(names) == batch_size:
            yield names, images
            names, images = [], []
    if names:
        yield names, images


# ---- the outputs --------------------------------------------------------------------------

def output_format(path: str, formats: tuple[str, ...]) -> str:
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    if suffix not in formats:
        raise ConfigError(f"--to {path}: the file name must end in {', '.join('.' + f for f in formats)}")
    return suffix


class EmbeddingWriter:
    """Streams (names, embeddings) rows to .npy (+ <name>.files.txt), .parquet or .csv."""

    def __init__(self, path: str):
        self.path, self.format = path, output_format(path, EMBED_FORMATS)
        self.rows, self.dim = 0, None
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._parquet = self._csv = self._raw = self._names = None
        if self.format == "npy":
            # Rows go to a raw scratch file first: the .npy header holds the final row count.
            self._raw = tempfile.NamedTemporaryFile(dir=os.path.dirname(os.path.abspath(path)), delete=False)
            self._names = open(files_list_path(path), "w", encoding="utf-8")
        elif self.format == "csv":
            self._csv_file = open(path, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._csv_file)

    def write(self, names: list[str], embeddings: np.ndarray) -> None:
        embeddings = np.asarray(embeddings, np.float32)
        if self.dim is None:
            self.dim = embeddings.shape[1]
            if self._csv:
                self._csv.writerow(["file"] + [f"e{i}" for i in range(self.dim)])
        self.rows += len(names)
        if self.format == "npy":
            self._raw.write(embeddings.tobytes())
            self._names.write("".join(f"{n}\n" for n in names))
        elif self.format == "csv":
            self._csv.writerows([n] + [f"{v:.7g}" for v in row] for n, row in zip(names, embeddings))
        else:
            self._write_parquet(names, embeddings)

    def _write_parquet(self, names, embeddings):
        import pyarrow as pa
        import pyarrow.parquet as pq
        table = pa.table({"file": pa.array(names, pa.string()),
                          "embedding": pa.FixedSizeListArray.from_arrays(pa.array(embeddings.reshape(-1)), self.dim)})
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table)

    def close(self) -> None:
        if self.format == "npy":
            self._names.close()
            self._raw.close()
            with open(self.path, "wb") as out, open(self._raw.name, "rb") as raw:
                np.lib.format.write_array_header_1_0(
                    out, {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.dim or 0)})
                shutil.copyfileobj(raw, out, 1 << 20)
            os.remove(self._raw.name)
        elif self.format == "csv":
            self._csv_file.close()
        elif self._parquet is not None:
            self._parquet.close()


def files_list_path(npy_path: str) -> str:
    return os.path.splitext(npy_path)[0] + ".files.txt"


class PredictionWriter:
    """Streams (file, class_name, class_id, probability) rows to .csv or .jsonl."""

    def __init__(self, path: str):
        self.path, self.format = path, output_format(path, PREDICT_FORMATS)
        self.rows = 0
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file = open(path, "w", newline="", encoding="utf-8")
        if self.format == "csv":
            self._csv = csv.writer(self._file)
            self._csv.writerow(["file", "class_name", "class_id", "probability"])

    def write(self, names: list[str], outputs: dict[str, np.ndarray]) -> None:
        ids = outputs["class_id"].astype(int)
        probabilities = outputs[PREDICTION_KEY][np.arange(len(ids)), ids]
        class_names = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in outputs["class_name"]]
        rows = list(zip(names, class_names, ids.tolist(), probabilities.astype(float).tolist()))
        self.rows += len(rows)
        if self.format == "csv":
            self._csv.writerows((n, c, i, f"{p:.6f}") for n, c, i, p in rows)
        else:
            self._file.write("".join(json.dumps({"file": n, "class_name": c, "class_id": i, "probability": round(p, 6)},
                                                ensure_ascii=False) + "\n" for n, c, i, p in rows))

    def close(self) -> None:
        self._file.close()


# ---- the commands -------------------------------------------------------------------------

def run(source: str, model_path: str, to: str, batch_size: int, predict: bool) -> dict:
    """Streams `source` through the model into `to`; returns counts (written, skipped by reason)."""
    from tqdm import tqdm

    from simsiam_tfx.trainer.monitors import progress_bar
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    writer = PredictionWriter(to) if predict else EmbeddingWriter(to)
    model = Model(model_path)
    if predict and not model.classifies:
        raise ConfigError(f"{model_path} has no classifier (no serve_image_bytes signature): use `embed`, "
                          "or a pushed model / LinearProbe's model")
    skipped: dict[str, int] = {}
    bar = progress_bar(desc="predict" if predict else "embed", unit="img", leave=True)

    def on_skip(name, reason):
        skipped[reason] = skipped.get(reason, 0) + 1
        tqdm.write(f"skipped {name}: {reason}", file=sys.stderr)

    try:
        for names, images in checked_batches(source, batch_size, on_skip):
            outputs = model.run(images)
            if predict:
                writer.write(names, outputs)
            else:
                writer.write(names, outputs["embedding"])
            bar.update(len(names))
    finally:
        bar.close()
        writer.close()
    return {"written": writer.rows, "to": to, "model": model_path, "skipped": sum(skipped.values()),
            "skipped_by_reason": skipped}
