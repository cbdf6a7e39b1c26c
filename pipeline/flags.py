"""The command-line flags that set a PipelineConfig: one table, read both to build the parsers and to
apply the parsed values, so a flag and its configuration field are named in one place."""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Optional

from simsiam_tfx.config import AUGMENT_PRESETS, BACKBONES, DATASETS, PRECISIONS, PipelineConfig

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
    Flag("tfrecords", ("data.tfrecords",), "TFRecords of tf.train.Example with an encoded image and an int64 label",
         path=True, data=True, metavar="PATTERN"),
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
    Flag("augment", ("data.augment",), "augmentation preset (default: strong-colour for shapes, mild for digits, "
         "cifar for CIFAR-size and imagenet above for photos)", choices=AUGMENT_PRESETS),
    Flag("epochs", ("pretrain.epochs",), f"pre-training epochs (default: {_default('pretrain.epochs')})", type=int),
    Flag("batch-size", ("pretrain.batch_size",), f"pre-training batch size (default: "
         f"{_default('pretrain.batch_size')})", type=int),
    Flag("backbone", ("pretrain.backbone",), f"encoder (default: {_default('pretrain.backbone')})",
         choices=BACKBONES),
    Flag("width", ("pretrain.width",), f"channels of the first ResNet stage (default: {_default('pretrain.width')})",
         type=int),
    Flag("precision", ("pretrain.precision",), "pre-training precision: bf16 = Keras mixed_bfloat16, fp16 = "
         "mixed_float16 with dynamic loss scaling (default: fp32)", choices=PRECISIONS),
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


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The configuration the flags describe, over `--config` (flags a command lacks stay as they are)."""
    config = PipelineConfig.from_json_file(args.config) if getattr(args, "config", None) else PipelineConfig()
    for flag in FLAGS:
        value = getattr(args, flag.dest, None)
        if flag.switch is not None:
            value = flag.switch if value else None
        if value is None:
            continue
        for field in flag.fields:
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
            if value and "://" not in value:
                setattr(section, name, os.path.abspath(os.path.expanduser(value)))
    config.output_dir = os.path.abspath(config.output_dir)
    return config.validate()
