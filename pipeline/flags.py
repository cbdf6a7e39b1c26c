"""The command-line flags that set a PipelineConfig: one table, read both to build the parsers and to
apply the parsed values, so a flag and its configuration field are named in one place."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import re
import sys
from typing import Any, Optional

from simsiam_tfx.config import (AUGMENT_PRESETS, BACKBONES, DATASETS, DEFAULT_EPOCHS, PRECISIONS, ConfigError,
                                PipelineConfig)
from simsiam_tfx.registries import EMBEDDED_DATASETS
from simsiam_tfx.files import is_remote

_DEFAULTS = PipelineConfig()


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str  # the flag without "--"; its argparse dest has "_" for "-"
    fields: tuple[str, ...]  # the configuration fields it sets, "section.field" or "field"
    help: str
    type: Any = str
    choices: Optional[tuple[str, ...]] = None
    switch: Any = None  # a flag without a value: sets its field(s) to this
    path: bool = False  # a local path: made absolute (the plan is read from elsewhere)
    data: bool = False  # decides the data (also a flag of `sources`)
    metavar: Optional[str] = None

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


def _by_data(key: str, show, photos: str) -> str:
    """The default the data's recipe gives (registries.EMBEDDED_DATASETS), in words."""
    return ", ".join(f"{show(recipe[key])} for {name}" for name, recipe in EMBEDDED_DATASETS.items()) + f", {photos}"


def _default(field: str) -> Any:
    target = _DEFAULTS
    for part in field.split("."):
        target = getattr(target, part)
    return target


FLAGS = (
    Flag("output", ("output_dir",), f"output directory (default: {_DEFAULTS.output_dir})", metavar="DIR"),
    Flag("image-size", ("data.image_size",), f"image side in pixels (default: {_default('data.image_size')})",
         type=int, data=True),
    Flag("seed", ("data.seed", "pretrain.seed"), "seed for data generation and training (default: 0)", type=int,
         data=True),
    Flag("dataset", ("data.dataset",), f"named data set: embedded (offline) or TFDS (default: "
         f"{_default('data.dataset')})", choices=DATASETS, data=True),
    Flag("tfds-data-dir", ("data.tfds_data_dir",), "where prepared TFDS data sets are (local or gs://)",
         path=True, data=True, metavar="DIR"),
    Flag("tfds-download", ("data.tfds_download",), "download and prepare a missing TFDS data set (needs internet)",
         switch=True, data=True),
    Flag("images", ("data.images",), "labelled images, one sub-folder per class; pre-training, probe and "
         "evaluation (fixed hash split)", path=True, data=True, metavar="DIR"),
    Flag("tfrecords", ("data.tfrecords",), "TFRecords of tf.train.Example with an encoded image and an int64 label: "
         "a file, a folder (every file in it) or a glob pattern (data/*.tfrecord.gz); a file or folder that exists "
         "is read as that path, whatever characters its name holds", path=True, data=True, metavar="PATH"),
    Flag("image-key", ("data.image_key",), f"image feature of --tfrecords (default: {_default('data.image_key')})",
         data=True),
    Flag("label-key", ("data.label_key",), f"label feature of --tfrecords (default: {_default('data.label_key')})",
         data=True),
    Flag("pretrain-images", ("data.pretrain_images",), "unlabelled images (any folder tree) for pre-training only",
         path=True, data=True, metavar="DIR"),
    Flag("probe-dataset", ("data.probe_dataset",), "a separate labelled data set for probe and evaluation",
         choices=DATASETS, data=True),
    Flag("probe-images", ("data.probe_images",), "a separate labelled class-folder tree for probe and evaluation",
         path=True, data=True, metavar="DIR"),
    Flag("eval-fraction", ("data.eval_fraction",), "share of a single labelled source held out for evaluation "
         f"(default: {_default('data.eval_fraction')})", type=float, data=True),
    Flag("schema", ("data.schema",), "curated schema.pbtxt (ImportSchemaGen); anomalies against it stop the run",
         path=True, data=True, metavar="FILE"),
    Flag("augment", ("pretrain.augment",), "augmentation preset (default: "
         f"{_by_data('augment', str, 'cifar for CIFAR-size and imagenet above for photos')})", choices=AUGMENT_PRESETS),
    Flag("epochs", ("pretrain.epochs",), "pre-training epochs (default: "
         f"{_by_data('epochs', str, f'{DEFAULT_EPOCHS} for photos')})", type=int),
    Flag("time-budget", ("pretrain.time_budget",), "wall-clock budget of pre-training (90s, 10m, 2h): the epoch "
         "count is chosen from the throughput measured on the first steps so the whole schedule ends inside it "
         "(instead of --epochs)", metavar="DURATION"),
    Flag("batch-size", ("pretrain.batch_size",), f"pre-training batch size (default: "
         f"{_default('pretrain.batch_size')})", type=int),
    Flag("backbone", ("pretrain.backbone",), f"encoder (default: {_default('pretrain.backbone')})",
         choices=BACKBONES),
    Flag("view-size", ("pretrain.view_size",), "side of the views pre-training trains on, in pixels; the encoder "
         "is still probed and served at --image-size (default: "
         f"{_by_data('view_fraction', lambda f: f'{f:g} x the image side', 'the image side for photos')})",
         type=int),
    Flag("width", ("pretrain.width",), f"channels of the first ResNet stage (default: {_default('pretrain.width')})",
         type=int),
    Flag("precision", ("pretrain.precision",), "pre-training precision: bf16 = Keras mixed_bfloat16, fp16 = "
         "mixed_float16 with dynamic loss scaling, auto = bf16 where the CPU (AVX512-BF16/AMX) or GPU (8.0+) "
         f"computes it faster, else fp32 (default: {_default('pretrain.precision')})", choices=PRECISIONS),
    Flag("warm-start", ("pretrain.warm_start",), "retraining policy: start pre-training from the encoder of the "
         "model being served (default: from scratch); the Evaluator still compares with the served model",
         switch=True),
    Flag("supervised-epochs", ("probe.supervised_epochs",), "also train a supervised-from-scratch reference (same "
         "encoder + linear head) for this many epochs on probe_train and report its eval accuracy (default: 0 = off)",
         type=int),
    Flag("min-accuracy", ("eval.min_accuracy",), f"Evaluator's accuracy floor for blessing (default: "
         f"{_default('eval.min_accuracy')})", type=float),
    Flag("max-regression", ("eval.max_regression",), "largest accuracy drop vs the last blessed model that still "
         "blesses (default: 0)", type=float),
    Flag("min-above-chance", ("eval.min_above_chance",), "probe accuracy must beat always answering the eval "
         f"split's most frequent class by this much (default: {_default('eval.min_above_chance')})", type=float),
    Flag("min-gain", ("eval.min_gain",), "probe accuracy must beat the random-init encoder's by this much "
         f"(default: {_default('eval.min_gain')}; a negative value turns the check off)", type=float),
    Flag("allow-label-change", ("eval.allow_label_change",), "push a model whose classes differ from the served "
         "model's over it (default: refused)", switch=True),
    Flag("no-cache", ("enable_cache",), "re-run every component even if its inputs are unchanged", switch=False),
)


def add_flags(parser: argparse.ArgumentParser, data_only: bool = False, exclude: tuple[str, ...] = ()) -> None:
    """Adds `--config` and the table's flags (`data_only`: those that decide the data)."""
    parser.add_argument("--config", metavar="FILE", help="JSON configuration file (flags given here override it)")
    for flag in FLAGS:
        if (data_only and not flag.data) or flag.name in exclude:
            continue
        if flag.switch is not None:
            parser.add_argument(f"--{flag.name}", action="store_true", help=flag.help)
        else:
            parser.add_argument(f"--{flag.name}", type=flag.type, choices=flag.choices, metavar=flag.metavar,
                                help=flag.help)


_GLOB_CHARACTERS = re.compile(r"[*?\[\]]")


def glob_safe_folder(folder: str, create: bool = True) -> str:
    """`folder`, or where it holds glob characters (`run [1]`), a link to it whose path holds none.

    TFX, Beam and TensorFlow read what they wrote back through patterns (a component's input is
    `<artifact uri>/*`, Beam's file sinks match their temporary files, a SavedModel's variables are
    found by a pattern), so under a folder named with `[`, `]`, `*` or `?` they would find nothing:
    the run uses the link instead, and says so. It lives in the user's cache, named by a hash of the
    folder's path: the same --output always gets the same link (and the same cache hits), and what
    is written goes to the folder itself."""
    if is_remote(folder) or not _GLOB_CHARACTERS.search(folder) or not (create or os.path.isdir(folder)):
        return folder
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    links = os.path.join(cache, "simsiam-tfx", "outputs")
    if _GLOB_CHARACTERS.search(links):
        raise ConfigError(f"--output {folder} holds glob characters and so does the cache folder {links}: choose "
                          f"an output folder without [ ] * ?", "output_dir")
    link = os.path.join(links, hashlib.sha256(folder.encode("utf-8", "surrogateescape")).hexdigest()[:16])
    os.makedirs(folder, exist_ok=True)
    os.makedirs(links, exist_ok=True)
    if os.path.realpath(link) != os.path.realpath(folder):
        staged = f"{link}.{os.getpid()}"
        os.symlink(folder, staged)
        os.replace(staged, link)  # atomic: two runs on one folder agree on the link
    print(f"note: --output {folder} holds glob characters, which TensorFlow and Beam read as a pattern; "
          f"it is used through {link}, a link to it", file=sys.stderr)
    return link


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The configuration the flags describe, over `--config` (flags a command lacks stay as they are)."""
    config = PipelineConfig.from_json_file(args.config) if getattr(args, "config", None) else PipelineConfig()
    given: dict[str, str] = {}  # field -> the flag the user set it with
    for flag in FLAGS:
        value = getattr(args, flag.dest, None)
        if flag.switch is not None:
            value = flag.switch if value else None
        if value is None:
            continue
        for field in flag.fields:
            given[field] = f"--{flag.name}"
            *sections, name = field.split(".")
            target = config
            for section in sections:
                target = getattr(target, section)
            setattr(target, name, value)
    for flag in FLAGS:
        if flag.path:
            *sections, name = flag.fields[0].split(".")
            section = getattr(config, sections[0])
            value = getattr(section, name)
            if value and not is_remote(value):
                setattr(section, name, os.path.abspath(os.path.expanduser(value)))
    if not config.output_dir:
        raise ConfigError("--output must not be empty", "output_dir")
    config.output_dir = glob_safe_folder(os.path.abspath(os.path.expanduser(config.output_dir)))
    try:
        return config.validate()
    except ConfigError as e:
        raise named_by_flag(e, given) from None


def named_by_flag(error: ConfigError, given: dict[str, str]) -> ConfigError:
    """The error naming what the user typed: the flag (`given`: field -> flag), when the value came
    from one."""
    if error.key in given and str(error).startswith(error.key):
        return ConfigError(given[error.key] + str(error)[len(error.key):], error.key)
    return error
