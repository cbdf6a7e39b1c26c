"""The registries: each choice the CLI offers is one table here, and its names are the table's keys.

They sit at the bottom so that the flags (pipeline/), the configuration check (config.py) and the
code that acts on a choice (trainer/, components/) all read the same table: a new entry here is
accepted by its flag and used by the code with no other edit. tests/simsiam_tfx/test_registries.py
fails when a flag's choices and its table disagree.
"""
from __future__ import annotations

# Augmentation policies (`--augment`): each policy's parameters that differ from
# trainer/augment.py's AugmentConfig defaults (the paper's CIFAR policy). Changing one changes the
# Transform graph, its cache key and the Trainers' views.
AUGMENT_POLICIES: dict[str, dict] = {
    # The paper's ImageNet policy (MoCo v2's): crops down to 20 %, jitter, grayscale, blur, flip.
    "imagenet": {"blur_prob": 0.5},
    # The paper's CIFAR policy: the same without blur (blur destroys 32 px images).
    "cifar": {},
    # The CIFAR policy with colour jitter strong enough (any hue, large saturation/brightness
    # changes) that two views cannot be matched by their colour alone: on `shapes`, where colour
    # is random and carries no class, weaker jitter lets SimSiam match views by colour.
    "strong-colour": {"jitter": (0.8, 0.8, 0.8, 0.5)},
    # For tiny, centred, colourless images such as 8x8 digits: large crops, no flips (a flipped
    # digit is another glyph), no hue/saturation: the paper's crops make SimSiam worse there
    # (docs/benchmarks.md, "digits").
    "mild": {"crop_scale": (0.5, 1.0), "jitter": (0.4, 0.4, 0.0, 0.0), "flip": False},
}

# Encoders (`--backbone`): residual block kind, blocks per stage, and whether the stem is CIFAR's
# (3x3, stride 1, no pooling) rather than ImageNet's (7x7 stride 2 + max-pool). trainer/backbones.py.
BACKBONE_ARCHS: dict[str, tuple[str, tuple[int, ...], bool]] = {
    "resnet18": ("basic", (2, 2, 2, 2), True),
    "resnet50": ("bottleneck", (3, 4, 6, 3), False),
}

# Precisions (`--precision`): the Keras mixed-precision policy of each. fp16 is float16 compute
# with dynamic loss scaling (trainer/pretrain.py `build_simsiam`); bf16 needs none.
PRECISION_POLICIES: dict[str, str] = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
AUTO_PRECISION = "auto"  # bf16 where the hardware computes it, else fp32 (resolved at run time)

# Embedded data sets (`--dataset`), made offline by components/embedded.py, and the pre-training
# recipe each gets where its flag is not given: the augmentation policy (why: the policies' comments
# above), the views' side as a fraction of the image side (`--view-size`) and the epochs. At the
# wall time of the default run before, views at half the side for 90 epochs beat the image side
# for 48 on every seed of shapes and tied on digits (docs/benchmarks.md, "The default run's recipe").
# Other data: the paper's policy for its size, the image side, config.DEFAULT_EPOCHS.
EMBEDDED_DATASETS: dict[str, dict] = {
    "shapes": {"augment": "strong-colour", "view_fraction": 0.5, "epochs": 90},
    "digits": {"augment": "mild", "view_fraction": 0.5, "epochs": 90},
}

# TFDS data sets (`--dataset`), read through their prepared builders (components/sources.py): which
# TFDS split feeds each pipeline split. `hash_split`: the data set has one split (tf_flowers has only
# `train`), cut by a hash of each image's bytes into pre-training and probe (1 - eval_fraction) and
# evaluation (eval_fraction). Changing an entry changes the plans, so ExampleGen runs again.
TFDS_DATASETS: dict[str, dict] = {
    "tf_flowers": {"pretrain": "train", "probe_train": "train", "eval": "train", "hash_split": True},
    # Pre-training also sees the 100k unlabelled images, which STL-10 holds for exactly that.
    "stl10": {"pretrain": "unlabelled+train", "probe_train": "train", "eval": "test", "hash_split": False},
    "cifar10": {"pretrain": "train", "probe_train": "train", "eval": "test", "hash_split": False},
}
