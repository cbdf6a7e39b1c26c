"""What stops a Trainer before it trains, with one line: GPUs the compiled pipeline asked for but
TensorFlow does not see (a CPU image on a GPU node, or missing CUDA libraries) instead of silently
training on the CPU, and data that cannot train or measure a model."""
from __future__ import annotations

import os

from tfx import types
from tfx.types import artifact_utils

from simsiam_tfx.config import ConfigError


def check_gpus(requested: int) -> None:
    if requested <= 0:
        return
    import tensorflow as tf
    seen = len(tf.config.list_physical_devices("GPU"))
    if seen < requested:
        raise ConfigError(f"{requested} GPU(s) requested for this Trainer but TensorFlow sees {seen}: "
                          f"run the GPU image (kubeflow/Dockerfile, --build-arg LOCK=requirements-gpu.lock) "
                          f"on a GPU node")


def check_splits(examples: types.Artifact, splits: list[str], class_names: list[str]) -> None:
    """Degenerate data stops here, before any training, with one line: fewer than 2 pre-training
    images, or a class without a labelled example in probe_train or in eval (the probe could not
    learn it, or its accuracy would not measure it)."""
    from simsiam_tfx.trainer import data
    counts = {split: data.label_counts([os.path.join(artifact_utils.get_split_uri([examples], split), "*")])
              for split in splits}
    if "pretrain" in counts and sum(counts["pretrain"].values()) < 2:
        raise ConfigError(f"the pretrain split holds {sum(counts['pretrain'].values())} image(s); "
                          f"pre-training needs at least 2")
    for split in ("probe_train", "eval"):
        if split not in counts:
            continue
        missing = [name for i, name in enumerate(class_names) if not counts[split].get(i)]
        if missing:
            have = {name: counts[split].get(i, 0) for i, name in enumerate(class_names)}
            raise ConfigError(f"{len(missing)} class(es) have no labelled example in {split}: {missing[:10]} "
                              f"(per class: {dict(list(have.items())[:20])}); every class needs images in "
                              f"probe_train and eval: add images or remove the class")
