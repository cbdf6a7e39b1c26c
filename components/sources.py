"""Where the pipeline's images come from: a plan that ExampleGen executes.

A `SourcePlan` says, for each of the three splits (pretrain, probe_train, eval), which `Read`s feed
it. A Read is one stream of encoded images: a TFDS split read through the TFDS builder, a folder of
images (class sub-folders for labels, or any tree for unlabelled data), or TFRecords of
tf.train.Example. A Read may keep only part of its images, chosen by a hash of each image's bytes,
which gives a fixed split that never depends on file order or on which machine reads it.

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
import glob
import hashlib
import json
import os
from typing import Any, Optional

from simsiam_tfx.config import TFDS_DATASETS, ConfigError, DataConfig
from simsiam_tfx.features import SPLITS
from simsiam_tfx.files import is_remote

PLAN_FILE = "sources.json"
SPAN_PREFIX = "span-"
_CHECKSUM_KEY = "checksum"


# Which TFDS splits feed which pipeline split. tf_flowers has only `train`: it is cut by hash.
_TFDS_SPLITS = {
    "tf_flowers": {"pretrain": "train", "probe_train": "train", "eval": "train", "hash_split": True},
    # The second seed's setting: SimSiam on STL10's 100k unlabelled images plus its 5k train images.
    "stl10": {"pretrain": "unlabelled+train", "probe_train": "train", "eval": "test", "hash_split": False},
    "cifar10": {"pretrain": "train", "probe_train": "train", "eval": "test", "hash_split": False},
}


@dataclasses.dataclass(frozen=True)
class Read:
    """One stream of encoded images (and labels) for ExampleGen."""
    kind: str  # "tfds" | "images" | "tfrecords"
    location: str  # TFDS name, image folder, or TFRecord file pattern
    labelled: bool = True
    split: str = ""  # TFDS split expression, e.g. "unlabelled+train"
    data_dir: str = ""  # TFDS data_dir
    image_key: str = "image"  # TFRecords only
    label_key: str = "label"
    classes: tuple[str, ...] = ()  # labelled image folders: class sub-folder names in label order
    keep: tuple[float, float] = (0.0, 1.0)  # kept range of the image-bytes hash, as a fraction

    def source(self) -> "Read":
        """What is read (and checked) once, however many splits select from it: the stream
        without its hash selection and with labels (a split drops them where not `labelled`)."""
        return dataclasses.replace(self, keep=(0.0, 1.0), labelled=True)

    def patterns(self) -> list[str]:
        """Beam file patterns of everything this Read reads. An image folder is one pattern, plus
        one per symlinked class folder: Beam's matcher follows a link named in a pattern, never
        one met below it (so a link back up the tree cannot loop)."""
        if self.kind != "images":
            return [self.location]
        linked = [c for c in self.classes if os.path.islink(os.path.join(self.location, c))]
        return [files_under(self.location)] + [files_under(os.path.join(self.location, c)) for c in linked]

    def describe(self) -> str:
        what = {"tfds": f"TFDS {self.location}[{self.split}]", "images": f"images in {self.location}",
                "tfrecords": f"TFRecords {self.location}"}[self.kind]
        return what if self.keep == (0.0, 1.0) else f"{what} (hash {self.keep[0]:g}-{self.keep[1]:g})"


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


# ---- planning -------------------------------------------------------------------------------

def _fraction_split(read: Read, eval_fraction: float) -> dict[str, list[Read]]:
    """One labelled stream -> pre-training and probe on the same (1 - f), evaluation on f."""
    train = dataclasses.replace(read, keep=(0.0, 1.0 - eval_fraction))
    return {"pretrain": [train], "probe_train": [train],
            "eval": [dataclasses.replace(read, keep=(1.0 - eval_fraction, 1.0))]}


def tfds_builder(name: str, data_dir: Optional[str], download: bool = False):
    """The TFDS builder of a prepared data set, or a one-line ConfigError saying how to prepare it."""
    import tensorflow_datasets as tfds
    builder = tfds.builder(name, data_dir=data_dir or None)
    if not builder.is_prepared():
        if download:
            builder.download_and_prepare()
        else:
            raise ConfigError(
                f"TFDS data set {name!r} is not prepared in {builder.data_dir}: prepare it on a machine with "
                f"internet (`tfds build {name} --data_dir DIR`, or run with --tfds-download) and pass "
                f"--tfds-data-dir DIR (a local path or gs://...)")
    return builder


def _tfds_plan(name: str, data: DataConfig) -> tuple[dict[str, list[Read]], list[str], str]:
    builder = tfds_builder(name, data.tfds_data_dir, data.tfds_download)
    layout = _TFDS_SPLITS[name]
    reads = {split: Read("tfds", name, split=layout[split], data_dir=data.tfds_data_dir or "",
                         labelled=split != "pretrain") for split in SPLITS}
    if layout["hash_split"]:
        splits = _fraction_split(reads["probe_train"], data.eval_fraction)
        splits["pretrain"] = [dataclasses.replace(splits["pretrain"][0], labelled=False)]
    else:
        splits = {split: [read] for split, read in reads.items()}
    return splits, list(builder.info.features["label"].names), f"{name} (TFDS {builder.info.version})"


def printable(path: str) -> str:
    """A local path as text: bytes of a name that is not UTF-8 are shown as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(name: str) -> bool:
    """Whether a file name read from disk is valid UTF-8 (Python keeps other bytes as surrogates)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _walk_files(root: str):
    """Every file below root. Locally, symlinked sub-folders are not entered (a link back up the
    tree would loop); names that are not UTF-8 are kept (ExampleGen skips them by name)."""
    import tensorflow as tf
    walk = tf.io.gfile.walk(root) if is_remote(root) else os.walk(root)
    for directory, _, files in walk:
        for name in files:
            yield os.path.join(directory, name)


def _class_folder_problem(root: str, name: str) -> Optional[str]:
    """Why the sub-folder `name` of a local labelled folder cannot be a class, or None."""
    path = os.path.join(root, name)
    if not is_utf8(name):
        return "class folder name is not valid UTF-8"
    if os.path.islink(path):
        real, real_root = os.path.realpath(path), os.path.realpath(root)
        if real == real_root or real_root.startswith(real + os.sep) or real.startswith(real_root + os.sep):
            return "symlink into the data folder itself (a loop, or a second copy of a class)"
    if next(_walk_files(path), None) is None:
        return "empty class folder (no images)"
    return None


def _class_folders(root: str) -> tuple[list[str], list[dict[str, str]]]:
    """Sub-folders of `root` that hold at least one file (sorted), and the others as skipped.
    Locally a symlinked class folder is a class (Read.patterns follows it)."""
    import tensorflow as tf
    classes, skipped = [], []
    local = not is_remote(root)
    names = sorted(e.name for e in os.scandir(root) if e.is_dir()) if local else \
        sorted(n.rstrip("/") for n in tf.io.gfile.listdir(root) if tf.io.gfile.isdir(os.path.join(root, n)))
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(root, name)
        if local:
            problem = _class_folder_problem(root, name)
        else:
            problem = None if next(_walk_files(path), None) is not None else "empty class folder (no images)"
        if problem:
            skipped.append({"source": root, "item": printable(path), "reason": problem})
        else:
            classes.append(name)
    return classes, skipped


def _require_folder(path: str, flag: str) -> str:
    import tensorflow as tf
    if not tf.io.gfile.isdir(path):
        raise ConfigError(f"{flag} {path}: no such folder")
    return path.rstrip("/")


def _labelled_images_plan(root: str, data: DataConfig, flag: str):
    root = _require_folder(root, flag)
    classes, skipped = _class_folders(root)
    if len(classes) < 2:
        raise ConfigError(f"{flag} {root}: a labelled folder needs at least 2 class sub-folders with images, "
                          f"found {len(classes)}")
    read = Read("images", root, labelled=True, classes=tuple(classes))
    return _fraction_split(read, data.eval_fraction), classes, skipped


def _tfrecord_labels(pattern: str, label_key: str) -> list[int]:
    """Distinct labels of TFRecords (a streaming pass over the label feature only)."""
    import tensorflow as tf
    files = tf.io.gfile.glob(pattern)
    if not files:
        raise ConfigError(f"--tfrecords {pattern}: no files match")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    spec = {label_key: tf.io.FixedLenFeature([], tf.int64, default_value=-1)}
    labels = set()
    # Record by record, so a malformed one is passed over here (ExampleGen skips and reports it).
    ds = (tf.data.TFRecordDataset(files, compression_type=compression)
          .map(lambda r: tf.io.parse_single_example(r, spec)[label_key], num_parallel_calls=tf.data.AUTOTUNE)
          .ignore_errors().batch(4096))
    for batch in ds:
        labels.update(batch.numpy().tolist())
    labels.discard(-1)
    return sorted(labels)


def tfrecords_pattern(given: str) -> str:
    """--tfrecords as a Beam/TensorFlow file pattern: a file or folder that exists is that path (its
    name may hold `[`, `*`, ...: escaped; a folder means every file in it); anything else is a
    pattern, as given."""
    import tensorflow as tf
    if tf.io.gfile.isdir(given):
        return os.path.join(glob.escape(given.rstrip("/")), "*")
    if tf.io.gfile.exists(given):
        return glob.escape(given)
    return given


def _tfrecords_plan(pattern: str, data: DataConfig):
    pattern = tfrecords_pattern(pattern)
    labels = _tfrecord_labels(pattern, data.label_key)
    if not labels:
        raise ConfigError(f"--tfrecords {pattern}: no record has an int64 label feature {data.label_key!r} "
                          f"(set --label-key)")
    if labels[0] < 0:
        raise ConfigError(f"--tfrecords {pattern}: labels must be >= 0, found {labels[0]}")
    read = Read("tfrecords", pattern, image_key=data.image_key, label_key=data.label_key)
    num_classes = labels[-1] + 1
    return _fraction_split(read, data.eval_fraction), [str(i) for i in range(num_classes)]


def _embedded_plan(name: str, data: DataConfig, data_root: str):
    from simsiam_tfx.components import embedded
    copy = embedded.materialize(name, data_root, data.image_size, data.shapes_per_split, data.seed)
    # A pattern: the folder we wrote (under --output, which may hold `[`, `*`, ...) is escaped.
    splits = {split: [Read("tfrecords", os.path.join(glob.escape(copy.input_base), split, "*"),
                           labelled=split != "pretrain")] for split in SPLITS}
    from simsiam_tfx.components import shapes
    names = list(shapes.CLASS_NAMES) if name == "shapes" else [str(i) for i in range(copy.num_classes)]
    return splits, names, f"{name} (embedded)"


def _labelled_source(data: DataConfig, data_root: str, dataset: str, images: Optional[str],
                     tfrecords: Optional[str], images_flag: str):
    """(splits, class names, description, skipped) of one labelled source."""
    if images:
        splits, classes, skipped = _labelled_images_plan(images, data, images_flag)
        return splits, classes, f"class folders in {images}", skipped
    if tfrecords:
        splits, classes = _tfrecords_plan(tfrecords, data)
        return splits, classes, f"TFRecords {tfrecords}", []
    if dataset in TFDS_DATASETS:
        return (*_tfds_plan(dataset, data), [])
    return (*_embedded_plan(dataset, data, data_root), [])


def plan(data: DataConfig, data_root: str) -> SourcePlan:
    """The sources the configuration names, cut into the pipeline's three splits."""
    splits, classes, description, skipped = _labelled_source(
        data, data_root, data.dataset, data.images, data.tfrecords, "--images")
    pretrain_description = probe_description = description
    if data.probe_dataset or data.probe_images:
        probe_splits, classes, probe_description, probe_skipped = _labelled_source(
            data, data_root, data.probe_dataset or "", data.probe_images, None, "--probe-images")
        splits = {"pretrain": splits["pretrain"], "probe_train": probe_splits["probe_train"],
                  "eval": probe_splits["eval"]}
        skipped = skipped + probe_skipped
    if data.pretrain_images:
        root = _require_folder(data.pretrain_images, "--pretrain-images")
        splits["pretrain"] = [Read("images", root, labelled=False)]
        pretrain_description = f"images in {root}"
    if pretrain_description != probe_description:
        description = f"pre-train on {pretrain_description}; probe and evaluate on {probe_description}"
    # Pre-training never sees labels, even where the source has them.
    splits["pretrain"] = [dataclasses.replace(r, labelled=False) for r in splits["pretrain"]]
    result = SourcePlan(splits=splits, class_names=classes, description=description, skipped=skipped,
                        image_size=data.image_size)
    result.content_fingerprint, result.source_files = _content(result)
    return result


# ---- fingerprints and the plan file ---------------------------------------------------------

def _file_lines(pattern: str) -> list[str]:
    """(path, size, mtime) of every file the pattern matches, from one listing (cheap on GCS too),
    by the same matcher ExampleGen reads with."""
    from apache_beam.io.filesystems import FileSystems
    [result] = FileSystems.match([pattern])
    return sorted(f"{m.path}\t{m.size_in_bytes}\t{m.last_updated_in_seconds}" for m in result.metadata_list)


def files_under(folder: str) -> str:
    """The Beam file pattern of every file below `folder`, whose own name may hold glob characters
    (`photos [v1]`): they are escaped as one-character classes, which Beam's matcher understands."""
    return glob.escape(folder.rstrip("/")) + "/**"


def content_fingerprint(source_plan: SourcePlan) -> str:
    """Changes when any source's content changes (names, sizes, mtimes; TFDS version and shards)."""
    return _content(source_plan)[0]


def _content(source_plan: SourcePlan) -> tuple[str, dict[str, int]]:
    """(content fingerprint, files per file-based source location), from one listing per source."""
    digest, counts = hashlib.sha256(), {}
    for read in sorted({r.source() for reads in source_plan.splits.values() for r in reads},
                       key=lambda r: json.dumps(dataclasses.asdict(r))):
        digest.update(json.dumps(dataclasses.asdict(read), sort_keys=True).encode())
        if read.kind == "tfds":
            info = tfds_builder(read.location, read.data_dir or None).info
            digest.update(f"{info.version}{[(s, info.splits[s].shard_lengths) for s in sorted(info.splits)]}".encode())
        else:
            lines = [line for pattern in read.patterns() for line in _file_lines(pattern)]
            counts[read.location] = len(lines)
            for line in lines:
                digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16], counts


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def manifest_text(source_plan: SourcePlan) -> str:
    """The plan as written to sources.json: its JSON plus a checksum of that JSON."""
    body = json.loads(source_plan.to_json())
    return json.dumps({**body, _CHECKSUM_KEY: _checksum(body)}, indent=2, sort_keys=True, ensure_ascii=False)


def _write_atomically(path: str, text: str, overwrite: bool = True) -> None:
    """Written aside and renamed (one object write on GCS), so no reader sees half a manifest."""
    import tensorflow as tf
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(text)
    try:
        tf.io.gfile.rename(temporary, path, overwrite=overwrite)
    except tf.errors.AlreadyExistsError:
        tf.io.gfile.remove(temporary)
        raise


def write_plan(source_plan: SourcePlan, root: str) -> str:
    """Writes sources.json under root/sources-<fingerprint>/ unless already there; returns that folder.

    An existing identical file is left untouched so its mtime, and TFX's cache, stay valid.
    """
    import tensorflow as tf
    folder = os.path.join(root, f"sources-{source_plan.fingerprint()}")
    path = os.path.join(folder, PLAN_FILE)
    if not tf.io.gfile.exists(path):
        tf.io.gfile.makedirs(folder)
        _write_atomically(path, manifest_text(source_plan))
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
            _write_atomically(os.path.join(folder, PLAN_FILE), manifest_text(spanned), overwrite=False)
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
