"""The pipeline's image sources, one class each: how the settings name a source, and how
ExampleGen reads it.

A `Read` is one stream of encoded images; its `kind` names the `Source` class that reads it
(`KINDS`): a folder of images (class sub-folders for labels, or any tree for unlabelled data),
TFRecords of tf.train.Example, or a TFDS split read through the TFDS builder. A Read may keep only
part of its images, chosen by a hash of each image's bytes, which gives a fixed split that never
depends on file order or on which machine reads it.

Each source is one class: how the settings name it and how it is cut into the splits (`labelled`),
how a Read of it describes itself, what its content fingerprint covers, and how ExampleGen streams
it into (image bytes, label) records. A new source is one class here, in `KINDS` (and `SOURCES`),
plus its test. The embedded data sets are a source that is written once as TFRecords and read as
such.

The plan that gathers the Reads into the pipeline's splits, with its manifests and spans, is
components/source_plan.py's; it builds on this module, never the reverse.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
from typing import Any, ClassVar, NamedTuple, Optional

from simsiam_tfx.config import ConfigError, DataConfig
from simsiam_tfx.features import SPLITS, UNLABELLED
from simsiam_tfx.files import is_remote
from simsiam_tfx.registries import EMBEDDED_DATASETS, TFDS_DATASETS

SKIPPED = "skipped"  # the Beam output tag of what a source could not use
_RECORD_FRAMING = 16  # a TFRecord's length (8 bytes) and two CRCs (4 each) around its data


@dataclasses.dataclass(frozen=True)
class Read:
    """One stream of encoded images (and labels) for ExampleGen, as sources.json holds it: every
    field is written, whatever the kind, so that manifests (and their fingerprints) keep one form."""
    kind: str  # which source reads it: a key of KINDS
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
        """Beam file patterns of everything this Read reads."""
        return KINDS[self.kind].patterns(self)

    def describe(self) -> str:
        what = KINDS[self.kind].describe(self)
        return what if self.keep == (0.0, 1.0) else f"{what} (hash {self.keep[0]:g}-{self.keep[1]:g})"


@dataclasses.dataclass(frozen=True)
class Choice:
    """What the settings name as one labelled source (the main one, or the probe's)."""
    dataset: str  # a named data set ("" for none)
    images: Optional[str]  # a labelled class-folder tree
    tfrecords: Optional[str]  # a TFRecords file, folder or pattern
    images_flag: str  # the flag that gave `images`, for messages


class Planned(NamedTuple):
    """One labelled source cut into the pipeline's splits."""
    splits: dict[str, list[Read]]
    class_names: list[str]
    description: str
    skipped: list[dict[str, str]]


class Source:
    """One kind of image source. `labelled` says how the settings name it and how it is cut into
    the splits; the other methods act on one of its Reads, which names it by `kind`."""
    kind: ClassVar[str]  # a Read's `kind` in sources.json

    @classmethod
    def labelled(cls, choice: Choice, data: DataConfig, data_root: str) -> Optional[Planned]:
        """The splits this source feeds where `choice` names it; None where it names another."""
        raise NotImplementedError

    @staticmethod
    def describe(read: Read) -> str:
        raise NotImplementedError

    @staticmethod
    def patterns(read: Read) -> list[str]:
        """Beam file patterns of everything the Read reads."""
        return [read.location]

    @classmethod
    def content(cls, read: Read) -> tuple[list[str], Optional[int]]:
        """What the content fingerprint covers of the Read (file names, sizes and mtimes, from one
        listing), and the files it holds (None: not a file-based source)."""
        lines = [line for pattern in cls.patterns(read) for line in _file_lines(pattern)]
        return lines, len(lines)

    @staticmethod
    def records(pipeline, read: Read):
        """Beam: the Read's images as (item, encoded bytes, label: UNLABELLED where it has none),
        and, as the second PCollection, `skip` records of what it could not use."""
        raise NotImplementedError


def skip(read: Read, item: str, reason: str):
    """A file or record of `read` that cannot be used, as a line of ExampleGen's skipped report."""
    import apache_beam as beam
    return beam.pvalue.TaggedOutput(SKIPPED, json.dumps(
        {"source": printable(read.describe()), "item": printable(item), "reason": reason}, ensure_ascii=False))


def _fraction_split(read: Read, eval_fraction: float) -> dict[str, list[Read]]:
    """One labelled stream -> pre-training and probe on the same (1 - f), evaluation on f."""
    train = dataclasses.replace(read, keep=(0.0, 1.0 - eval_fraction))
    return {"pretrain": [train], "probe_train": [train],
            "eval": [dataclasses.replace(read, keep=(1.0 - eval_fraction, 1.0))]}


class ImageFolder(Source):
    """A folder of image files: labelled by class sub-folder (cut by hash into the splits), or any
    tree of unlabelled images for pre-training (`unlabelled`)."""
    kind = "images"

    @classmethod
    def labelled(cls, choice, data, data_root):
        if not choice.images:
            return None
        root = _require_folder(choice.images, choice.images_flag)
        classes, skipped = _class_folders(root)
        if len(classes) < 2:
            raise ConfigError(f"{choice.images_flag} {root}: a labelled folder needs at least 2 class sub-folders "
                              f"with images, found {len(classes)}")
        read = Read(cls.kind, root, labelled=True, classes=tuple(classes))
        return Planned(_fraction_split(read, data.eval_fraction), classes, f"class folders in {choice.images}",
                       skipped)

    @classmethod
    def unlabelled(cls, folder: str, flag: str) -> Read:
        return Read(cls.kind, _require_folder(folder, flag), labelled=False)

    @staticmethod
    def describe(read):
        return f"images in {read.location}"

    @staticmethod
    def patterns(read):
        """One pattern, plus one per symlinked class folder: Beam's matcher follows a link named in
        a pattern, never one met below it (so a link back up the tree cannot loop)."""
        linked = [c for c in read.classes if os.path.islink(os.path.join(read.location, c))]
        return [files_under(read.location)] + [files_under(os.path.join(read.location, c)) for c in linked]

    @staticmethod
    def records(pipeline, read):
        import apache_beam as beam
        from apache_beam.io import fileio
        files = (pipeline | "Patterns" >> beam.Create(ImageFolder.patterns(read)) | "Match" >> fileio.MatchAll()
                 # File names only: spreads the reads over workers and mixes their order.
                 | "Spread" >> beam.Reshuffle()
                 | "Open" >> fileio.ReadMatches())
        outputs = files | "Read" >> beam.FlatMap(_FolderFile(read)).with_outputs(SKIPPED, main="records")
        return outputs.records, outputs[SKIPPED]


class _FolderFile:
    """An image-folder file -> (path, bytes, label); the label is the class sub-folder (if any)."""

    def __init__(self, read: Read):
        self.read = read
        self.class_ids = {name: i for i, name in enumerate(read.classes)}

    def __call__(self, readable: Any):
        path = readable.metadata.path
        if not is_utf8(path):  # TFX, TFDV and the reports all take names as UTF-8 text
            yield skip(self.read, path, "file name is not valid UTF-8")
            return
        label = UNLABELLED
        if self.class_ids:
            relative = os.path.relpath(path, self.read.location)
            folder = relative.split(os.sep, 1)[0] if os.sep in relative else None
            if folder not in self.class_ids:
                yield skip(self.read, path, "not inside a class sub-folder")
                return
            label = self.class_ids[folder]
        try:
            data = readable.read()
        except OSError as e:
            yield skip(self.read, path, f"unreadable ({e.strerror or e})")
            return
        yield path, data, label


class TfRecords(Source):
    """TFRecords of tf.train.Example with an encoded image and an int64 label, cut by hash into the
    splits; the classes are 0 .. the highest label."""
    kind = "tfrecords"

    @classmethod
    def labelled(cls, choice, data, data_root):
        if not choice.tfrecords:
            return None
        pattern = tfrecords_pattern(choice.tfrecords)
        labels = _tfrecord_labels(pattern, data.label_key)
        if not labels:
            raise ConfigError(f"--tfrecords {pattern}: no record has an int64 label feature {data.label_key!r} "
                              f"(set --label-key)")
        if labels[0] < 0:
            raise ConfigError(f"--tfrecords {pattern}: labels must be >= 0, found {labels[0]}")
        read = Read(cls.kind, pattern, image_key=data.image_key, label_key=data.label_key)
        return Planned(_fraction_split(read, data.eval_fraction), [str(i) for i in range(labels[-1] + 1)],
                       f"TFRecords {choice.tfrecords}", [])

    @staticmethod
    def describe(read):
        return f"TFRecords {read.location}"

    @staticmethod
    def records(pipeline, read):
        import apache_beam as beam
        from apache_beam.io import fileio
        paths = (pipeline | "Match" >> fileio.MatchFiles(read.location)
                 | "Paths" >> beam.Map(lambda metadata: metadata.path)
                 | "Spread" >> beam.Reshuffle())  # one file a task, over the workers
        outputs = paths | "Read" >> beam.FlatMap(_RecordFile(read)).with_outputs(SKIPPED, main="records")
        return outputs.records, outputs[SKIPPED]


class _RecordFile:
    """A TFRecord file -> (record, image bytes, label) by the Read's feature keys. A file cut short
    (a copy or upload that stopped) keeps the records before the cut and is named as a skip: Beam's
    own reader drops a cut-off tail without a word, or fails the run, depending on where the cut
    falls."""

    def __init__(self, read: Read):
        self.read = read

    def __call__(self, path: str):
        import tensorflow as tf
        count = consumed = 0
        compression = "GZIP" if path.endswith(".gz") else ""
        try:
            for record in tf.data.TFRecordDataset(path, compression_type=compression).as_numpy_iterator():
                count += 1
                consumed += len(record) + _RECORD_FRAMING
                yield self._example(path, record)
        except (tf.errors.OpError, OSError) as error:
            yield skip(self.read, path, f"truncated or corrupt TFRecord file: {count} records read, then "
                                        f"{type(error).__name__}")
            return
        # TensorFlow's reader takes a file cut inside a record's header for a clean end.
        size = tf.io.gfile.stat(path).length
        if not compression and consumed != size:
            yield skip(self.read, path, f"truncated or corrupt TFRecord file: {count} records read, then "
                                        f"{size - consumed} stray bytes")

    def _example(self, path: str, record: bytes):
        import tensorflow as tf
        item = f"{path} record sha256:{hashlib.sha256(record).hexdigest()[:12]}"
        try:
            features = tf.train.Example.FromString(record).features.feature
        except Exception:  # noqa: BLE001  (protobuf raises its own DecodeError)
            return skip(self.read, item, "not a tf.train.Example")
        images = features[self.read.image_key].bytes_list.value if self.read.image_key in features else []
        labels = features[self.read.label_key].int64_list.value if self.read.label_key in features else []
        if len(images) != 1:
            return skip(self.read, item, f"no single bytes feature {self.read.image_key!r}")
        if len(labels) != 1:
            return skip(self.read, item, f"no single int64 feature {self.read.label_key!r}")
        return item, images[0], int(labels[0])


class Embedded(TfRecords):
    """An embedded data set (registries.EMBEDDED_DATASETS): written once under the data root as
    TFRecords of its three fixed splits (components/embedded.py), and read as TFRecords."""

    @classmethod
    def labelled(cls, choice, data, data_root):
        if choice.dataset not in EMBEDDED_DATASETS:
            return None
        from simsiam_tfx.components import embedded
        copy = embedded.materialize(choice.dataset, data_root, data.image_size, data.shapes_per_split, data.seed)
        # A pattern: the folder we wrote (under --output, which may hold `[`, `*`, ...) is escaped.
        splits = {split: [Read(cls.kind, os.path.join(glob.escape(copy.input_base), split, "*"),
                               labelled=split != "pretrain")] for split in SPLITS}
        return Planned(splits, copy.class_names, f"{choice.dataset} (embedded)", [])


class Tfds(Source):
    """A prepared TFDS data set (registries.TFDS_DATASETS says which of its splits feeds which
    pipeline split), read through its builder."""
    kind = "tfds"

    @classmethod
    def labelled(cls, choice, data, data_root):
        if choice.dataset not in TFDS_DATASETS:
            return None
        name, layout = choice.dataset, TFDS_DATASETS[choice.dataset]
        builder = tfds_builder(name, data.tfds_data_dir, data.tfds_download)
        reads = {split: Read(cls.kind, name, split=layout[split], data_dir=data.tfds_data_dir or "",
                             labelled=split != "pretrain") for split in SPLITS}
        if layout["hash_split"]:
            splits = _fraction_split(reads["probe_train"], data.eval_fraction)
            splits["pretrain"] = [dataclasses.replace(splits["pretrain"][0], labelled=False)]
        else:
            splits = {split: [read] for split, read in reads.items()}
        return Planned(splits, list(builder.info.features["label"].names),
                       f"{name} (TFDS {builder.info.version})", [])

    @staticmethod
    def describe(read):
        return f"TFDS {read.location}[{read.split}]"

    @classmethod
    def content(cls, read):
        """Its version and every split's shard lengths: a prepared data set's files never change."""
        info = tfds_builder(read.location, read.data_dir or None).info
        return [f"{info.version}{[(s, info.splits[s].shard_lengths) for s in sorted(info.splits)]}"], None

    @staticmethod
    def records(pipeline, read):
        import apache_beam as beam
        import tensorflow_datasets as tfds
        builder = tfds_builder(read.location, read.data_dir or None)
        examples = pipeline | "Read" >> tfds.beam.ReadFromTFDS(
            builder, split=read.split, decoders={"image": tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(add_tfds_id=True))
        outputs = examples | "Records" >> beam.Map(_tfds_record, read.location).with_outputs(SKIPPED, main="records")
        return outputs.records, outputs[SKIPPED]


def _tfds_record(example, location: str):
    item = example["tfds_id"].numpy().decode() if "tfds_id" in example else "?"
    label = int(example["label"].numpy()) if "label" in example else UNLABELLED
    return f"{location}/{item}", example["image"].numpy(), label


# Each kind a Read in sources.json may name -> the source that reads it.
KINDS: dict[str, type[Source]] = {source.kind: source for source in (ImageFolder, TfRecords, Tfds)}
# Every source, in the order the settings are asked: a folder or TFRecords the user gave comes
# before the named data set, which has a default.
SOURCES: tuple[type[Source], ...] = (ImageFolder, TfRecords, Tfds, Embedded)


# ---- what the sources share ------------------------------------------------------------------

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
