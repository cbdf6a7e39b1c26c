"""Throughput of SimSiam training, of the Trainer's input pipeline, and of the two together.

All three use the Trainer's own code: `pretrain.build_simsiam` and its train step, and
`data.pretrain_views` reading transformed examples from TFRecords and drawing the views with a
Transform graph built and loaded as in the pipeline (`data.write_transform_graph`,
`data.Transform.load`). Rates are images per second, an image being one pair of views (two
forward/backward passes).

How close to the machine: the train step's floating-point operations are counted in its graph by
TensorFlow's profiler (forward and backward of both views, the optimizer update), so
`train_gflops_per_second` is counted work, not an estimate; `matmul_peak_gflops` is this machine's
measured rate on a large matrix product in the same precision, the practical ceiling the step is
compared with (`share_of_matmul_peak`).
"""
from __future__ import annotations

import os
import platform
import tempfile
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.config import default_proj_dim
from simsiam_tfx.features import to_transformed_example
from simsiam_tfx.trainer import data
from simsiam_tfx.trainer.augment import AugmentConfig
from simsiam_tfx.registries import PRECISION_POLICIES
from simsiam_tfx.trainer.pretrain import build_simsiam, cpu_features


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    model = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} x {model}"


def cpu_flags() -> str:
    """The CPU features a timing depends on (AVX2, AVX-512, BF16, AMX)."""
    features = cpu_features()
    return " ".join(flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if flag in features)


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _timed(step, steps: int, warmup: int, batch_size: int) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def step_flops(step, *args) -> int:
    """Floating-point operations of one call of the tf.function `step`, counted in its graph."""
    from tensorflow.python.profiler import model_analyzer, option_builder
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(model_analyzer.profile(step.get_concrete_function(*args).graph, options=options).total_float_ops)


def matmul_peak_gflops(precision: str, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n matrix product in the precision's compute type (bf16 where it is
    mixed_bfloat16), after one warm-up product."""
    dtype = {"bf16": tf.bfloat16, "fp16": tf.float16}.get(precision, tf.float32)
    a = tf.random.stateless_uniform((n, n), (1, 2), dtype=tf.float32)
    a = tf.cast(a, dtype)
    product = tf.function(lambda x: tf.matmul(x, x))
    product(a).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        product(a).numpy()
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def _write_random_examples(path: str, num_images: int, image_size: int, seed: int = 0) -> None:
    """Random uint8 images in Transform's output format."""
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i in range(num_images):
            writer.write(to_transformed_example(rng.integers(0, 256, (image_size, image_size, 3), np.uint8), i % 10))


def run(backbone: str = "resnet18", width: int = 16, image_size: int = 32, batch_size: int = 256,
        precision: str = "fp32", xla: bool = False, steps: int = 20, warmup: int = 3,
        augment: AugmentConfig | None = None, augment_name: str = "cifar", num_images: int = 2048) -> dict:
    """`augment`: the policy the Transform graph draws views with (default: AugmentConfig's, the
    paper's CIFAR policy); the CLI passes the Transform module's policy named by --augment."""
    augment = augment or AugmentConfig()
    if precision not in PRECISION_POLICIES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_POLICIES)}, got {precision!r}")
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[precision])
    try:
        keras.utils.set_random_seed(0)
        proj_dim = default_proj_dim(backbone, width)
        simsiam = build_simsiam(backbone, width, image_size, proj_dim, 5e-4, 0.05, jit_compile=xla)

        # 1. Training alone, on tensors already in memory.
        views = tuple(tf.random.stateless_uniform((batch_size, image_size, image_size, 3), (0, i))
                      for i in range(2))
        train_step = tf.function(simsiam.train_step, jit_compile=xla or None)
        train_rate = _timed(lambda: train_step(views)["loss"].numpy(), steps, warmup, batch_size)
        flops_per_image = step_flops(tf.function(simsiam.train_step), views) / batch_size
        peak = matmul_peak_gflops(precision)

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "transformed.tfrecord.gz")
            _write_random_examples(path, num_images, image_size)
            graph = os.path.join(tmp, "transform_graph")
            data.write_transform_graph(graph, augment, image_size, augment_name,
                                       temp_dir=os.path.join(tmp, "tft"))
            dataset = data.pretrain_views([path], image_size, batch_size, data.Transform.load(graph), 0, num_images)
            # 2. The input pipeline alone: read, batch, two views by the Transform graph, decode.
            batches = iter(dataset)
            input_rate = _timed(lambda: next(batches), steps * 2, warmup, batch_size)
            # 3. Both together, as the Trainer runs them: Keras fit on the dataset. The first epoch
            # warms up (tracing, shuffle buffer, cache); the second, on the same iterator, is timed.
            timer = _EpochTimer()
            simsiam.fit(dataset, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[timer])
            end_to_end_rate = steps * batch_size / timer.seconds[-1]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {
        "train_images_per_second": round(train_rate, 1),
        "input_images_per_second": round(input_rate, 1),
        "end_to_end_images_per_second": round(end_to_end_rate, 1),
        "train_mflop_per_image": round(flops_per_image / 1e6, 1),
        "train_gflops_per_second": round(flops_per_image * train_rate / 1e9, 1),
        "matmul_peak_gflops": round(peak, 1),
        "share_of_matmul_peak": round(flops_per_image * train_rate / 1e9 / peak, 3),
        "backbone": backbone, "width": width, "image_size": image_size, "batch_size": batch_size,
        "precision": precision, "xla": xla, "augment": augment_name, "steps": steps, "warmup": warmup,
        "device": device_name(), "cpu_flags": cpu_flags(), "tensorflow": tf.__version__,
    }
