"""Where the pipeline's images come from: a plan that ExampleGen executes, its manifests and spans.

A `SourcePlan` says, for each of the three splits (pretrain, probe_train, eval), which `Read`s feed
it; the Reads, and the source classes that read them, are components/sources.py's. `plan` asks the
sources (`SOURCES`, in order) which one the settings name, and cuts it into the splits.

The plan is written as `sources.json` into a folder that is ExampleGen's `input_base`. The
fingerprint covers the plan *and* the sources' contents (file names, sizes and modification times;
TFDS versions and shard sizes), so TFX re-runs ExampleGen exactly when the data changed, and reuses
its cached output otherwise. Two layouts:

- `write_plan`: `<root>/sources-<fingerprint>/sources.json` (one folder per plan);
- `write_span`: data versions, `<root>/span-<N>/sources.json`, N = 1, 2, ... A new span is written
  only when no existing span holds the same plan (same settings, same content fingerprint), so a
  scheduled run on an unchanged bucket resolves to the same folder (every runner's cache key then
  matches) and new images make span N+1. Each span manifest is immutable once written.

Every manifest carries a sha256 `checksum` of its own content: a corrupt or half-written one, and a
span whose image sources are empty, stop the run with one line (`ConfigError`) before anything
trains (`load_plan`, `check_has_images`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from simsiam_tfx import files
from simsiam_tfx.components.sources import KINDS, SOURCES, Choice, ImageFolder, Planned, Read
from simsiam_tfx.config import DATASETS, ConfigError, DataConfig

PLAN_FILE = "sources.json"
SPAN_PREFIX = "span-"
_CHECKSUM_KEY = "checksum"


@dataclasses.dataclass
class SourcePlan:
    splits: dict[str, list[Read]]
    class_names: list[str]  # label order
    description: str
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)  # found while planning
    content_fingerprint: str = ""
    # The image size the plan was made for (0: unknown, an older plan); the Trainers check it against
    # the compiled pipeline's. (The augmentation is not the data's: Transform owns it.)
    image_size: int = 0
    # Files (TFDS: examples) each file-based source held when the plan was made, by location:
    # a source with none stops the run (check_has_images). {}: an older plan.
    source_files: dict[str, int] = dataclasses.field(default_factory=dict)
    span: int = 0  # the data version (span-N folder) this plan was written as; 0: not a span

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SourcePlan:
        raw = dict(raw)
        raw.pop("augment", None)  # plans written before Transform owned the augmentation
        raw["splits"] = {split: [Read(**{**r, "classes": tuple(r["classes"]), "keep": tuple(r["keep"])})
                                 for r in reads] for split, reads in raw["splits"].items()}
        return cls(**raw)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]


# ---- the plan ---------------------------------------------------------------------------------

def _labelled_source(choice: Choice, data: DataConfig, data_root: str) -> Planned:
    """The first source the choice names, cut into the splits."""
    for source in SOURCES:
        planned = source.labelled(choice, data, data_root)
        if planned is not None:
            return planned
    raise ConfigError(f"unknown dataset {choice.dataset!r}; choose one of {', '.join(DATASETS)}")


def plan(data: DataConfig, data_root: str) -> SourcePlan:
    """The sources the configuration names, cut into the pipeline's three splits."""
    splits, classes, description, skipped = _labelled_source(
        Choice(data.dataset, data.images, data.tfrecords, "--images"), data, data_root)
    pretrain_description = probe_description = description
    if data.probe_dataset or data.probe_images:
        probe_splits, classes, probe_description, probe_skipped = _labelled_source(
            Choice(data.probe_dataset or "", data.probe_images, None, "--probe-images"), data, data_root)
        splits = {"pretrain": splits["pretrain"], "probe_train": probe_splits["probe_train"],
                  "eval": probe_splits["eval"]}
        skipped = skipped + probe_skipped
    if data.pretrain_images:
        read = ImageFolder.unlabelled(data.pretrain_images, "--pretrain-images")
        splits["pretrain"] = [read]
        pretrain_description = read.describe()
    if pretrain_description != probe_description:
        description = f"pre-train on {pretrain_description}; probe and evaluate on {probe_description}"
    # Pre-training never sees labels, even where the source has them.
    splits["pretrain"] = [dataclasses.replace(r, labelled=False) for r in splits["pretrain"]]
    result = SourcePlan(splits=splits, class_names=classes, description=description, skipped=skipped,
                        image_size=data.image_size)
    result.content_fingerprint, result.source_files = _content(result)
    return result


# ---- fingerprints and the plan file ---------------------------------------------------------

def content_fingerprint(source_plan: SourcePlan) -> str:
    """Changes when any source's content changes (names, sizes, mtimes; TFDS version and shards)."""
    return _content(source_plan)[0]


def _content(source_plan: SourcePlan) -> tuple[str, dict[str, int]]:
    """(content fingerprint, files per file-based source location), from one listing per source."""
    digest, counts = hashlib.sha256(), {}
    for read in sorted({r.source() for reads in source_plan.splits.values() for r in reads},
                       key=lambda r: json.dumps(dataclasses.asdict(r))):
        digest.update(json.dumps(dataclasses.asdict(read), sort_keys=True).encode())
        lines, files = KINDS[read.kind].content(read)
        if files is not None:
            counts[read.location] = files
        for line in lines:
            digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16], counts


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def manifest_text(source_plan: SourcePlan) -> str:
    """The plan as written to sources.json: its JSON plus a checksum of that JSON."""
    body = json.loads(source_plan.to_json())
    return json.dumps({**body, _CHECKSUM_KEY: _checksum(body)}, indent=2, sort_keys=True, ensure_ascii=False)


def write_plan(source_plan: SourcePlan, root: str) -> str:
    """Writes sources.json under root/sources-<fingerprint>/ unless already there; returns that folder.

    An existing identical file is left untouched so its mtime, and TFX's cache, stay valid.
    """
    import tensorflow as tf
    folder = os.path.join(root, f"sources-{source_plan.fingerprint()}")
    path = os.path.join(folder, PLAN_FILE)
    if not tf.io.gfile.exists(path):
        tf.io.gfile.makedirs(folder)
        files.write_text(path, manifest_text(source_plan))
    return folder


def span_folders(root: str) -> dict[int, str]:
    """{N: root/span-N} of every span folder under root."""
    import tensorflow as tf
    if not tf.io.gfile.isdir(root):
        return {}
    found = {}
    for entry in tf.io.gfile.listdir(root):
        name = entry.rstrip("/")
        if name.startswith(SPAN_PREFIX) and name[len(SPAN_PREFIX):].isdigit():
            found[int(name[len(SPAN_PREFIX):])] = os.path.join(root, name)
    return found


def _same_data(a: SourcePlan, b: SourcePlan) -> bool:
    return dataclasses.replace(a, span=0).fingerprint() == dataclasses.replace(b, span=0).fingerprint()


@dataclasses.dataclass(frozen=True)
class Span:
    number: int
    folder: str
    created: bool  # False: an existing span already held this data
    plan: SourcePlan


def write_span(source_plan: SourcePlan, root: str, attempts: int = 3) -> Span:
    """The span folder under `root` that holds this plan: an existing one with the same plan and
    content (nothing is written), else root/span-<N+1>/sources.json, N the highest span number.

    Every existing manifest is read first, so a corrupt one stops here with one line. A plan whose
    image sources are empty is refused before anything is written."""
    import tensorflow as tf
    check_has_images(source_plan, root)
    for _ in range(attempts):
        existing = span_folders(root)
        for number in sorted(existing, reverse=True):
            plan = load_plan(existing[number])
            if _same_data(plan, source_plan):
                return Span(number, existing[number], False, plan)
        number = max(existing, default=0) + 1
        folder = os.path.join(root, f"{SPAN_PREFIX}{number}")
        spanned = dataclasses.replace(source_plan, span=number)
        tf.io.gfile.makedirs(folder)
        try:  # never over another writer's span-N: the loser takes the next number
            files.write_text(os.path.join(folder, PLAN_FILE), manifest_text(spanned), overwrite=False)
        except tf.errors.AlreadyExistsError:
            continue
        return Span(number, folder, True, spanned)
    raise ConfigError(f"could not write a new span under {root}: other writers took {attempts} span numbers "
                      f"in a row")


def _corrupt(path: str, why: str) -> ConfigError:
    return ConfigError(f"data manifest {path} is corrupt or half-written ({why}): nothing was trained; move its "
                       f"folder aside and write the plan again (`simsiam-tfx sources ... --span auto`)")


def parse_manifest(text: str, path: str) -> SourcePlan:
    """A sources.json's plan; a manifest whose JSON, checksum or fields are broken raises one line."""
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _corrupt(path, f"not JSON: {e.msg if hasattr(e, 'msg') else e}") from None
    if not isinstance(raw, dict):
        raise _corrupt(path, "not a JSON object")
    checksum = raw.pop(_CHECKSUM_KEY, None)
    in_span = os.path.basename(os.path.dirname(path.rstrip("/"))).startswith(SPAN_PREFIX)
    if checksum is None and in_span:
        raise _corrupt(path, "no checksum")
    if checksum is not None and checksum != _checksum(raw):
        raise _corrupt(path, "checksum mismatch")
    try:
        return SourcePlan.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _corrupt(path, f"unexpected content: {type(e).__name__}: {e}") from None


def load_plan(input_base: str) -> SourcePlan:
    import tensorflow as tf
    path = os.path.join(input_base, PLAN_FILE)
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"{path} not found: ExampleGen's input_base must hold a {PLAN_FILE} "
                          f"(written by `simsiam-tfx run` or `simsiam-tfx sources`)")
    with tf.io.gfile.GFile(path, "rb") as f:
        return parse_manifest(f.read(), path)


def check_has_images(source_plan: SourcePlan, where: str) -> None:
    """One line, before any training, when a file-based source of the plan held no file."""
    empty = sorted(location for location, count in source_plan.source_files.items() if count == 0)
    if empty:
        raise ConfigError(f"{where}: the data holds no images in {', '.join(empty)}: nothing to train on; "
                          f"the served model is left as it is")


def summary(source_plan: SourcePlan) -> dict[str, Any]:
    return {"description": source_plan.description, "num_classes": source_plan.num_classes,
            "splits": {split: [r.describe() for r in reads] for split, reads in source_plan.splits.items()}}
