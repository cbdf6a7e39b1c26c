"""One typed configuration object for the whole pipeline.

Every knob lives here, with its default and its validation. The CLI, the tests and the runners
build a `PipelineConfig`; the Trainers receive their sections as JSON through TFX's
`custom_config` (components/trainer_config.py), so the trainer code sees the values the user set.
Defaults that measurements chose are explained with them in docs/benchmarks.md, not here.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import typing
from typing import Any, Optional, Union

from simsiam_tfx import contract
from simsiam_tfx.files import is_remote
from simsiam_tfx.registries import (AUGMENT_POLICIES, AUTO_PRECISION, BACKBONE_ARCHS, EMBEDDED_DATASETS,
                                    PRECISION_POLICIES, TFDS_DATASETS)

# The names each flag accepts, derived from its table (simsiam_tfx/registries.py).
DATASETS = (*EMBEDDED_DATASETS, *TFDS_DATASETS)
BACKBONES = tuple(BACKBONE_ARCHS)
PRECISIONS = (*PRECISION_POLICIES, AUTO_PRECISION)
AUGMENT_PRESETS = tuple(AUGMENT_POLICIES)
DEFAULT_EPOCHS = 30  # pre-training epochs for data without a recipe of its own (registries.EMBEDDED_DATASETS)
CIFAR_SIZE_MAX = 96  # images up to this side get the paper's CIFAR recipe, larger ones ImageNet's


def is_cifar_size(image_size: int) -> bool:
    return image_size <= CIFAR_SIZE_MAX


def default_proj_dim(backbone: str, width: int) -> int:
    """Projection / prediction dimension d: the paper's 2048 for ResNet-50, 16 x width for ResNet-18."""
    return 2048 if backbone == "resnet50" else 16 * width


class ConfigError(ValueError):
    """A user mistake in the configuration; the CLI prints it as one line. `key` is the setting it
    is about ("section.field"), when there is one: the flag layer names the flag instead when the
    value came from a flag."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclasses.dataclass(frozen=True)
class Range:
    """Where a numeric setting may lie; None: unbounded on that side."""
    low: float | None = None
    high: float | None = None
    open_low: bool = False  # low itself excluded

    def __contains__(self, value: float) -> bool:
        return (math.isfinite(value) and (self.low is None or value > self.low or (value == self.low and not self.open_low))
                and (self.high is None or value <= self.high))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"


_SEEDS = Range(0, 2**31 - 1)
# The range of every numeric setting ("section.field"), checked in PipelineConfig.validate; a list
# setting's range holds for each element. tests/simsiam_tfx/test_config.py fails for a numeric
# field missing here.
NUMERIC_RANGES: dict[str, Range] = {
    "data.image_size": Range(16, 512),
    "data.eval_fraction": Range(0, 0.99, open_low=True),
    "data.shapes_per_split": Range(10, 1_000_000),
    "data.seed": _SEEDS,
    "pretrain.width": Range(1, 1024),
    "pretrain.epochs": Range(1, 100_000),
    "pretrain.view_size": Range(8, 512),
    "pretrain.batch_size": Range(2, 65_536),  # BatchNorm needs a batch
    "pretrain.proj_dim": Range(1, 65_536),
    "pretrain.base_lr": Range(0, 100, open_low=True),
    "pretrain.weight_decay": Range(0, 1),
    "pretrain.momentum": Range(0, 0.999),
    "pretrain.warmup_epochs": Range(0, 100_000),
    "pretrain.final_lr_fraction": Range(0.0, 1.0),
    "pretrain.seed": _SEEDS,
    "pretrain.knn_k": Range(0, 100_000),  # 0: no kNN monitor
    "pretrain.knn_temperature": Range(0, 100, open_low=True),
    "pretrain.knn_every": Range(1, 100_000),
    "probe.l2": Range(0, 1e6),
    "probe.batch_size": Range(1, 65_536),
    "probe.supervised_epochs": Range(0, 100_000),
    "eval.min_accuracy": Range(0, 1),
    "eval.max_regression": Range(0, 1),
    "eval.min_above_chance": Range(-1, 1),
    "eval.min_gain": Range(-1, 1),
}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h)")
TIME_BUDGET_RANGE = Range(10, 7 * 24 * 3600)  # seconds


def duration_seconds(text: str) -> float:
    """"90s", "10m", "2.5h" -> seconds (ConfigError for anything else)."""
    match = _DURATION.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if not match:
        raise ConfigError(f"pretrain.time_budget must be a duration such as 90s, 10m or 2h, got {text!r}",
                          "pretrain.time_budget")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds not in TIME_BUDGET_RANGE:
        raise ConfigError(f"pretrain.time_budget must be between 10s and 168h, got {text!r}", "pretrain.time_budget")
    return seconds


@dataclasses.dataclass
class DataConfig:
    # A named data set: embedded (offline) or TFDS. It is the labelled source unless `images` or
    # `tfrecords` replaces it, and also the pre-training source unless `pretrain_images` does.
    dataset: str = "shapes"
    image_size: int = 32
    # TFDS: where prepared data sets live (local or gs://; None = TFDS's default ~/tensorflow_datasets),
    # and whether to download and prepare a missing one (needs internet).
    tfds_data_dir: Optional[str] = None
    tfds_download: bool = False
    # The user's own images: labelled class sub-folders (pre-training, probe and evaluation with a
    # fixed hash split), or TFRecords of tf.train.Example with an encoded image and an int64 label.
    images: Optional[str] = None
    tfrecords: Optional[str] = None
    image_key: str = "image"
    label_key: str = "label"
    # Separate sources (say, pre-train on STL-10's unlabelled images, probe on CIFAR-10): an
    # unlabelled folder for pre-training only, and/or a labelled data set or folder for the probe
    # and evaluation.
    pretrain_images: Optional[str] = None
    probe_dataset: Optional[str] = None
    probe_images: Optional[str] = None
    # A curated schema (schema.pbtxt) for ImportSchemaGen instead of inferring one; anomalies
    # against it (found by ExampleValidator) stop the run before Transform.
    schema: Optional[str] = None
    # Share of a single labelled source held out for evaluation (by a hash of the image bytes);
    # the rest is pre-trained on and probed (the first seed used 85/15).
    eval_fraction: float = 0.15
    # Size of the generated embedded datasets (shapes only; digits has 1,797 images).
    shapes_per_split: tuple[int, int, int] = (3000, 1000, 1000)
    seed: int = 0


@dataclasses.dataclass
class PretrainConfig:
    backbone: str = "resnet18"
    # Augmentation policy of the two views (registries.py AUGMENT_POLICIES; the Transform graph
    # draws them, trainer/augment.py). None picks the data's default: see PipelineConfig.augment_policy.
    augment: Optional[str] = None
    width: int = 16  # channels of the first stage; 64 is the standard ResNet-18
    # None: the data's recipe (an embedded data set's own, else DEFAULT_EPOCHS): see `resolved`.
    epochs: Optional[int] = None
    # Side of the views pre-training trains on (the random-resized crop's output); None: the data's
    # recipe (an embedded data set's own fraction of the image side, else the image side). The
    # encoder is fully convolutional, so it is exported, probed and served at the image side
    # whatever this is.
    view_size: Optional[int] = None
    # Small batches give a short CPU run more updates.
    batch_size: int = 64
    # Projection / prediction dimension d. None: `default_proj_dim`.
    proj_dim: Optional[int] = None
    # lr = base_lr * batch / 256. None: 0.05 for ImageNet-size (paper) and 0.5 for CIFAR-size
    # (solo-learn's CIFAR value): the paper's CIFAR 0.03 is tuned for 800 epochs and learns
    # nothing in a short run (docs/benchmarks.md, "Quality").
    base_lr: Optional[float] = None
    # None: 1e-3 for CIFAR-size (won over 5e-4 in the recipe study and in the pipeline on every
    # seed of shapes and digits: docs/benchmarks.md, "The recipe study"), 1e-4 for ImageNet-size.
    weight_decay: Optional[float] = None
    momentum: float = 0.9
    warmup_epochs: int = 0
    # The cosine schedule ends at this fraction of the peak rate (the paper: 0).
    final_lr_fraction: float = 0.0
    seed: int = 0
    # "bf16": Keras mixed_bfloat16 (bf16 compute, float32 weights; loss and normalisation in
    # float32), for CPUs with AVX512-BF16 and recent GPUs (simsiam-tfx bench measures it). "fp16":
    # mixed_float16 with dynamic loss scaling on both optimizers, for GPUs without bf16. "auto":
    # bf16 where the hardware computes it natively, else fp32 (docs/benchmarks.md, "Precision", has the
    # study).
    precision: str = "auto"
    # kNN monitor (eval vs probe_train) with k neighbours; 0 disables it.
    knn_k: int = 200
    knn_temperature: float = 0.1
    # ... every this many epochs, and after the last. It only reads the encoder, so the cadence
    # changes the run's time, never its encoder; each pass embeds every probe_train and eval image.
    knn_every: int = 5
    fail_on_collapse: bool = False
    # Retraining policy: False = every retraining starts from a fresh initialisation; True = from the
    # encoder of the model being served (components/warm_start.py), when there is one.
    warm_start: bool = False
    # A wall-clock budget for pre-training ("90s", "10m", "2h"): the epoch count is then chosen from
    # the throughput measured on the first steps, so the whole schedule ends inside it (`epochs` is
    # ignored). None: `epochs` as given.
    time_budget: Optional[str] = None

    def resolved(self, image_size: int, recipe: dict | None = None) -> "PretrainConfig":
        """A copy with every `None` replaced: by the data's `recipe` (PipelineConfig.data_recipe)
        where it has a value, else by the paper's value for this image size."""
        small = is_cifar_size(image_size)
        recipe = recipe or {}
        return dataclasses.replace(
            self,
            epochs=self.epochs or recipe.get("epochs", DEFAULT_EPOCHS),
            view_size=self.view_size or max(8, round(image_size * recipe.get("view_fraction", 1.0))),
            proj_dim=self.proj_dim or default_proj_dim(self.backbone, self.width),
            base_lr=self.base_lr if self.base_lr is not None else (0.5 if small else 0.05),
            weight_decay=self.weight_decay if self.weight_decay is not None else (1e-3 if small else 1e-4),
        )


@dataclasses.dataclass
class ProbeConfig:
    # L2 strength of the multinomial logistic regression fitted on frozen features (sklearn's C
    # is its inverse). Fixed, not tuned: the eval split must not be used to choose anything.
    l2: float = 1e-4
    batch_size: int = 256
    # Supervised-from-scratch reference: the same encoder + a linear head trained end to end with
    # labels on probe_train for this many epochs, reported as probe.supervised_accuracy. 0 = off.
    supervised_epochs: int = 0


@dataclasses.dataclass
class EvalConfig:
    # Absolute floor on eval-split accuracy. The default sits above what a linear probe on an
    # untrained encoder reaches on shapes and below what the default run reaches
    # (docs/benchmarks.md, "Quality"), so a blessed default run means pre-training moved the features.
    min_accuracy: float = 0.14
    # How much accuracy may drop against the last blessed model and still be blessed.
    max_regression: float = 0.0
    # The gate after the Evaluator (components/model_gate.py). Probe accuracy must beat always
    # answering the eval split's most frequent class by this much: a floor that follows the data.
    min_above_chance: float = 0.02
    # ... and beat the same probe on the random-init encoder by this much (pre-training must help).
    min_gain: float = 0.02
    # A model whose classes differ from the served model's is pushed over it only when allowed.
    allow_label_change: bool = False


@dataclasses.dataclass
class PipelineConfig:
    output_dir: str = "outputs"
    pipeline_name: str = "simsiam-tfx"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    enable_cache: bool = True
    # Where TFX writes its artifacts; None: <output_dir>/tfx. Set it to gs://... when Beam runs on
    # remote workers (Dataflow, Flink, Spark): they write ExampleGen/Transform outputs there. The
    # MLMD store and the summary stay in output_dir.
    artifact_root: Optional[str] = None
    # Extra Beam flags for the Beam-based components; the default runs Beam in this process.
    beam_pipeline_args: list[str] = dataclasses.field(
        default_factory=lambda: ["--runner=DirectRunner", "--direct_running_mode=in_memory",
                                 "--direct_num_workers=1"])

    # ---- paths, all under output_dir unless artifact_root says otherwise --------------------
    @property
    def pipeline_root(self) -> str:
        return self.artifact_root or os.path.join(self.output_dir, "tfx")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")

    @property
    def serving_model_dir(self) -> str:
        return os.path.join(self.output_dir, "serving_model")

    @property
    def data_root(self) -> str:
        return os.path.join(self.output_dir, "data")

    @property
    def summary_path(self) -> str:
        return os.path.join(self.output_dir, contract.RUN_SUMMARY_FILE)

    # ---- validation and (de)serialisation -------------------------------------------------
    def data_recipe(self) -> dict:
        """The pre-training recipe of the data pre-trained on: an embedded data set's own
        (registries.EMBEDDED_DATASETS); {} for photos (folders, TFRecords, TFDS)."""
        d = self.data
        if d.pretrain_images or d.images or d.tfrecords or d.dataset in TFDS_DATASETS:
            return {}
        return EMBEDDED_DATASETS[d.dataset]

    def pretrain_settings(self) -> PretrainConfig:
        """Pre-training's settings with every default filled in for this data (PretrainConfig.resolved)."""
        return self.pretrain.resolved(self.data.image_size, self.data_recipe())

    def augment_policy(self) -> str:
        """The augmentation policy's name: pretrain.augment, else the data's recipe's, else the paper's
        policies for photos ("cifar" for CIFAR-size, "imagenet" above)."""
        if self.pretrain.augment:
            return self.pretrain.augment
        return self.data_recipe().get("augment") or ("cifar" if is_cifar_size(self.data.image_size) else "imagenet")

    def validate(self) -> "PipelineConfig":
        check_types(self)
        check_ranges(self)
        d, p = self.data, self.pretrain
        require(d.dataset in DATASETS, f"unknown dataset {d.dataset!r}; choose one of {', '.join(DATASETS)}",
                "data.dataset")
        require(d.probe_dataset is None or d.probe_dataset in DATASETS,
                f"unknown --probe-dataset {d.probe_dataset!r}; choose one of {', '.join(DATASETS)}")
        require(not (d.images and d.tfrecords), "give --images or --tfrecords, not both")
        require(not (d.probe_dataset and d.probe_images), "give --probe-dataset or --probe-images, not both")
        require(bool(d.image_key) and bool(d.label_key), "--image-key and --label-key must not be empty")
        require(p.augment is None or p.augment in AUGMENT_POLICIES,
                f"unknown augmentation preset {p.augment!r}; choose one of {', '.join(AUGMENT_POLICIES)}",
                "pretrain.augment")
        require(p.backbone in BACKBONES, f"unknown backbone {p.backbone!r}; choose one of {', '.join(BACKBONES)}",
                "pretrain.backbone")
        require(p.warmup_epochs < self.pretrain_settings().epochs or p.time_budget is not None,
                "warm-up must be shorter than training")
        if p.time_budget is not None:
            duration_seconds(p.time_budget)
        require(p.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, got {p.precision!r}")
        require(bool(re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", self.pipeline_name)),
                f"pipeline_name must be 1-63 lowercase letters, digits and '-' (what KFP and Vertex accept), "
                f"got {_short(self.pipeline_name)}", "pipeline_name")
        if d.schema and not is_remote(d.schema):
            _check_schema_file(d.schema)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def trainer_dict(self) -> dict[str, Any]:
        """The sections the Trainers read. Only these enter their TFX execution properties, so
        changing e.g. the accuracy floor or the output folder leaves the Trainers cached (with
        --warm-start the output folder enters too: pre-training reads the served model from it)."""
        sections: dict[str, Any] = {key: dataclasses.asdict(getattr(self, key)) for key in ("data", "pretrain", "probe")}
        if self.pretrain.warm_start:
            sections["output_dir"] = self.output_dir
        return sections

    @classmethod
    def from_dict(cls, raw: Any) -> "PipelineConfig":
        """A configuration from a JSON document; any mistake is a ConfigError naming the key."""
        if not isinstance(raw, dict):
            raise ConfigError(f"the configuration must be a JSON object of settings, got {_json_kind(raw)}")
        sections = {"data": DataConfig, "pretrain": PretrainConfig, "probe": ProbeConfig, "eval": EvalConfig}
        raw = _moved_settings(raw)
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in sections:
                kwargs[key] = _build(sections[key], value, key)
            elif key in {f.name for f in dataclasses.fields(cls)}:
                kwargs[key] = value
            else:
                raise ConfigError(f"unknown configuration key {key!r}", key)
        config = cls(**kwargs)
        check_types(config)  # before anything uses a value (paths are joined, lists made tuples)
        config.data.shapes_per_split = tuple(config.data.shapes_per_split)
        return config

    @classmethod
    def from_json_file(cls, path: str) -> "PipelineConfig":
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            detail = " ".join(str(e).split()) if not isinstance(e, RecursionError) else "nested too deeply"
            raise ConfigError(f"config file {path} is not valid JSON: {detail}") from None
        return cls.from_dict(raw)


def _moved_settings(raw: dict) -> dict:
    """Older configuration files still load: data.augment is now pretrain.augment (the augmentation
    is no fact of the data)."""
    data = raw.get("data")
    if not (isinstance(data, dict) and "augment" in data):
        return raw
    pretrain = raw.get("pretrain", {})
    if not isinstance(pretrain, dict):
        return raw  # _build names the mistake
    data = dict(data)
    augment = data.pop("augment")
    return {**raw, "data": data, "pretrain": {"augment": augment, **pretrain}}


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _build(section_cls, value: Any, name: str):
    if not isinstance(value, dict):
        raise ConfigError(f"configuration section {name!r} must be an object, got {_json_kind(value)}", name)
    known = {f.name for f in dataclasses.fields(section_cls)}
    unknown = set(value) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in {name!r}: {', '.join(sorted(map(repr, unknown)))}", name)
    return section_cls(**value)


def require(ok: bool, message: str, key: str | None = None) -> None:
    if not ok:
        raise ConfigError(message, key)


def check_ranges(config: "PipelineConfig") -> None:
    """Every numeric setting inside its range (NUMERIC_RANGES), with one line naming the key."""
    for key, allowed in NUMERIC_RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value is None:
            continue
        for element in (value if isinstance(value, (list, tuple)) else [value]):
            if element not in allowed:
                each = "each element of " if isinstance(value, (list, tuple)) else ""
                raise ConfigError(f"{each}{key} must be {allowed}, got {_short(value)}", key)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _matches(value: Any, hint: Any) -> bool:
    """Whether a configuration value has its field's type (JSON lists stand for tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return any(_matches(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
        return not args or all(_matches(v, args[0]) for v in value)
    return True


_NAMES = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), type(None): ("null", "nulls")}


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return " or ".join(_describe(arg) for arg in args)
    if origin in (list, tuple):
        elements = _NAMES.get(args[0], ("", str(args[0])))[1] if args else "values"
        count = f"{len(args)} " if origin is tuple and args and args[-1] is not Ellipsis else ""
        return f"a list of {count}{elements}"
    return _NAMES.get(hint, (str(hint),))[0]


def check_types(config: "PipelineConfig") -> None:
    """Every field holds a value of its declared type: a config file's "false" is not a boolean and
    1.5 epochs are refused, with one line naming the field."""
    for obj, prefix in [(config, ""), *((getattr(config, s), f"{s}.") for s in ("data", "pretrain", "probe", "eval"))]:
        hints = typing.get_type_hints(type(obj))
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            texts = value if isinstance(value, list) else [value]
            if any(isinstance(t, str) and "\x00" in t for t in texts):
                raise ConfigError(f"{prefix}{field.name} must not contain a NUL character", f"{prefix}{field.name}")
            if any(isinstance(t, str) and not _is_utf8(t) for t in texts):
                raise ConfigError(f"{prefix}{field.name} {_short(value)} is not valid UTF-8: TensorFlow opens only "
                                  f"UTF-8 paths; rename it", f"{prefix}{field.name}")
            if not dataclasses.is_dataclass(value) and not _matches(value, hints[field.name]):
                raise ConfigError(f"{prefix}{field.name} must be {_describe(hints[field.name])}, got {_short(value)}",
                                  f"{prefix}{field.name}")


def _is_utf8(text: str) -> bool:
    """False for a str holding bytes that were not UTF-8 (os.fsdecode's surrogate escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_schema_file(path: str) -> None:
    """A curated schema is read and parsed before anything runs."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read --schema {path}: {e.strerror}") from None
    try:
        schema = text_format.Parse(text, schema_pb2.Schema())
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise ConfigError(f"--schema {path} is not a schema.pbtxt: {' '.join(str(e).split())}") from None
    require(len(schema.feature) > 0, f"--schema {path} describes no feature")
