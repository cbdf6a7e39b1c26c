"""Training monitors: collapse detection every epoch, kNN accuracy of the features every few; the
progress bars. (The run report's TensorBoard images and projector: tensorboard_export.py.)"""
from __future__ import annotations

import math
import os
import sys
import time
import weakref
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.features import UNLABELLED


def knn_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, k: int = 200, temperature: float = 0.1,
                 num_classes: Optional[int] = None) -> float:
    """Weighted kNN top-1 accuracy (Wu et al. 2018): cosine similarity, votes exp(sim / T).
    Unlabelled examples (label UNLABELLED) take no part, as neighbours or as queries."""
    train_features, train_labels = labelled(train_features, train_labels)
    test_features, test_labels = labelled(test_features, test_labels)
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, len(train_features))
    train = tf.math.l2_normalize(tf.constant(train_features, tf.float32), axis=1)
    test = tf.math.l2_normalize(tf.constant(test_features, tf.float32), axis=1)
    labels = tf.constant(train_labels, tf.int64)
    correct = 0
    for start in range(0, len(test_features), 1024):
        sims = tf.matmul(test[start:start + 1024], train, transpose_b=True)
        top_sims, top_idx = tf.math.top_k(sims, k=k)
        rows = tf.shape(top_idx)[0]
        # Votes summed into (rows, classes) directly: memory grows with rows x classes, never with
        # rows x k x classes as a one-hot of every neighbour would.
        segments = tf.range(rows, dtype=tf.int64)[:, None] * num_classes + tf.gather(labels, top_idx)
        votes = tf.math.unsorted_segment_sum(tf.exp(top_sims / temperature), segments,
                                             num_segments=tf.cast(rows, tf.int64) * num_classes)
        predicted = tf.argmax(tf.reshape(votes, (rows, num_classes)), axis=1)
        correct += int(tf.reduce_sum(tf.cast(predicted == test_labels[start:start + 1024], tf.int32)))
    return correct / len(test_features)


def labelled(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Only the examples with a class: an UNLABELLED (-1) example is no class of its own."""
    keep = np.asarray(labels) != UNLABELLED
    return features[keep], np.asarray(labels)[keep]


def knn_due(epoch: int, every: int, epochs: int | None) -> bool:
    """Whether the kNN monitor runs after `epoch` (1-based): every `every` epochs and after the last."""
    return epoch % every == 0 or epoch == epochs


def healthy_z_std(dim: int) -> float:
    return 1.0 / math.sqrt(dim)


def is_collapsed(z_std: float, dim: int, loss: float, ratio: float = 0.1) -> bool:
    """Collapse: the normalised outputs barely vary (std < ratio / sqrt(d)) or the loss sits at -1."""
    return z_std < ratio * healthy_z_std(dim) or loss <= -0.999


def progress_bar(**kwargs):
    """A tqdm bar on stderr, silent when stderr is not a terminal (CI logs stay short)."""
    from tqdm import tqdm
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("disable", None)  # None: off when `file` is not a TTY
    kwargs.setdefault("leave", False)
    if _terminal_columns(kwargs["file"]) > 0:
        kwargs.setdefault("dynamic_ncols", True)
    else:  # a terminal of unknown width (a bare pseudo-terminal) would get an empty bar
        kwargs.setdefault("ncols", 100)
    return tqdm(**kwargs)


def _terminal_columns(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


_INFERENCE: "weakref.WeakKeyDictionary[keras.Model, Callable]" = weakref.WeakKeyDictionary()


def _inference(encoder: keras.Model) -> Callable:
    """The encoder's inference call as one graph, traced once per encoder: an eager call runs its
    layers op by op, and the kNN monitor calls it every epoch."""
    if encoder not in _INFERENCE:
        model = weakref.ref(encoder)  # a strong reference from the value would keep the key alive
        _INFERENCE[encoder] = tf.function(lambda images: model()(images, training=False), reduce_retracing=True)
    return _INFERENCE[encoder]


def extract_features(encoder: keras.Model, dataset: tf.data.Dataset, desc: Optional[str] = None,
                     total: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Encoder features in inference mode (BatchNorm uses its moving statistics) and labels.

    With `desc`, shows a progress bar in images (`total` of them, when known: then with an ETA).
    """
    infer = _inference(encoder)
    feats, labels = [], []
    with progress_bar(desc=desc, total=total, unit="img", disable=None if desc else True) as bar:
        for images, y in dataset:
            feats.append(infer(images).numpy())
            labels.append(y.numpy())
            bar.update(len(labels[-1]))
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels).reshape(-1)


class EpochMonitor(keras.callbacks.Callback):
    """Logs loss, learning rate and z-std (and its healthy value) every epoch, and kNN accuracy on
    the epochs `knn_due` names (`knn_every`).

    Values go to TensorBoard (`log_dir`) and to `history`, a list of per-epoch dicts.
    """

    def __init__(self, log_dir: str, dim: int, knn_data: Optional[tuple[tf.data.Dataset, tf.data.Dataset]],
                 knn_k: int, knn_temperature: float, num_classes: int,
                 learning_rate: Callable[[], float], knn_every: int = 1):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.dim, self.knn_data, self.knn_k, self.knn_temperature = dim, knn_data, knn_k, knn_temperature
        self.num_classes, self.learning_rate, self.knn_every = num_classes, learning_rate, knn_every
        self.history: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "z_std": float(logs["z_std"]),
               "learning_rate": float(self.learning_rate())}
        if self.knn_data is not None and self.knn_k > 0 and knn_due(epoch + 1, self.knn_every,
                                                                    (self.params or {}).get("epochs")):
            train_x, train_y = extract_features(self.model.encoder, self.knn_data[0])
            test_x, test_y = extract_features(self.model.encoder, self.knn_data[1])
            row["knn_accuracy"] = knn_accuracy(train_x, train_y, test_x, test_y, self.knn_k,
                                               self.knn_temperature, self.num_classes)
        row["collapsed"] = is_collapsed(row["z_std"], self.dim, row["loss"])
        with self.writer.as_default(step=epoch + 1):
            for key, value in row.items():
                if key != "epoch":
                    tf.summary.scalar(f"monitor/{key}", float(value))
            tf.summary.scalar("monitor/z_std_healthy", healthy_z_std(self.dim))
        self.writer.flush()
        self.history.append(row)
        knn = f" knn={row['knn_accuracy']:.3f}" if "knn_accuracy" in row else ""
        # tqdm.write keeps a progress bar on the terminal intact below the line.
        from tqdm import tqdm
        tqdm.write(f"[pretrain] epoch {epoch + 1}: loss={row['loss']:.4f} z_std={row['z_std']:.4f} "
                   f"(healthy {healthy_z_std(self.dim):.4f}) lr={row['learning_rate']:.4g}{knn}"
                   f"{'  COLLAPSED' if row['collapsed'] else ''}", file=sys.stdout)
        sys.stdout.flush()


class StepProgress(keras.callbacks.Callback):
    """A progress bar over all training steps: epoch, loss, images/s and the ETA of the whole run.

    Keras hands it the step's logs as tensors (`_supports_tf_logs`); the loss is read (a device
    sync) only when the visible bar's text is refreshed, at most every `refresh_s`.
    """

    _supports_tf_logs = True

    def __init__(self, total_steps: int, batch_size: int, initial_step: int = 0, refresh_s: float = 0.5):
        super().__init__()
        self.total_steps, self.batch_size, self.initial_step = total_steps, batch_size, initial_step
        self.bar, self.epoch, self.started, self.steps = None, 0, 0.0, initial_step
        self.refresh_s, self.refreshed = refresh_s, 0.0

    def on_train_begin(self, logs=None):
        self.bar = progress_bar(total=self.total_steps, initial=self.initial_step, desc="pre-training",
                                unit="step", leave=False)
        self.started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        now = time.perf_counter()
        if not self.bar.disable and now - self.refreshed >= self.refresh_s:
            self.refreshed = now
            rate = (self.steps - self.initial_step) * self.batch_size / max(now - self.started, 1e-9)
            loss = (logs or {}).get("loss")
            self.bar.set_postfix_str(f"epoch {self.epoch}, loss {float(loss):.4f}, {rate:.0f} img/s"
                                     if loss is not None else f"epoch {self.epoch}", refresh=False)
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()
