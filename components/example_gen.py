"""ExampleGen for every source: TFDS, image folders, TFRecords and the embedded data sets.

A FileBasedExampleGen whose `input_base` holds a `sources.json` plan (components/source_plan.py) and
whose Beam executor streams each source, checks every image (components/image_check.py), and
writes the three splits as tf.train.Example{image: encoded bytes, label: int64 (-1 = unlabelled)}.

Nothing is held in memory: files are matched and read one at a time inside Beam, so the same code
runs in-process on a laptop and on Dataflow (`beam_pipeline_args`). A file that cannot be used is
never fatal: it is skipped, and named with its reason in `skipped_files.jsonl` inside the Examples
artifact, whose custom properties `skipped_count` and `skipped_by_reason` count them.

A plan that cannot be trained on stops here, with one line, before any training: a corrupt or
half-written manifest (source_plan.load_plan), an image source that holds no file
(source_plan.check_has_images), or a split that ends up with no example.

What the run read is recorded on the Examples artifact (`record_plan`; MLMD custom properties):
class names, content fingerprint, description, the span (data version) and the examples per split.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
from typing import Any

import apache_beam as beam
from tfx import types
from tfx import v1 as tfx
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils

from simsiam_tfx import contract
from simsiam_tfx.components import image_check, source_plan, sources
from simsiam_tfx.config import ConfigError
from simsiam_tfx.features import SPLITS, UNLABELLED, to_example

SKIPPED_REPORT = "skipped_files.jsonl"
_REPORT_PROPERTY = "_skipped_report_path"
_COUNTERS = "simsiam_tfx.example_gen"


class _Count(beam.DoFn):
    """Counts a split's examples (a Beam counter, read back once the pipeline has run)."""

    def __init__(self, split: str):
        self.split = split
        self.counter = beam.metrics.Metrics.counter(_COUNTERS, split)

    def process(self, element):
        self.counter.inc()
        yield element


def _checked(record, read: sources.Read):
    """(item, image bytes, label) of a source -> (hash fraction, image bytes, label), or a skip
    where the bytes are not a usable image."""
    item, data, label = record
    image, reason = image_check.check(data)
    if image is None:
        return sources.skip(read, item, reason)
    # Split membership from the original bytes: fixed, order-free, and duplicates stay together.
    fraction = int.from_bytes(hashlib.sha256(data).digest()[:8], "big") / 2.0**64
    return fraction, image, label


@beam.ptransform_fn
def _ReadAndCheck(pipeline: beam.Pipeline, read: sources.Read):  # pylint: disable=invalid-name
    """One source -> (checked (fraction, image, label), skipped json lines)."""
    records, unread = sources.KINDS[read.kind].records(pipeline, read)
    checked = records | "Check" >> beam.Map(_checked, read).with_outputs(sources.SKIPPED, main="images")
    return checked.images, (unread, checked[sources.SKIPPED]) | "Skipped" >> beam.Flatten()


class Executor(BaseExampleGenExecutor):
    """Beam executor: the plan in `input_base` -> the pipeline's three splits + a skipped report."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError("this ExampleGen reads its sources.json plan in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: dict[str, Any]):
        plan = self._plan(exec_properties)
        checked, skipped = {}, [pipeline | "PlanSkipped" >> beam.Create(
            [json.dumps(s, ensure_ascii=False) for s in plan.skipped])]
        for index, source in enumerate(dict.fromkeys(r.source() for split in SPLITS for r in plan.splits[split])):
            checked[source], source_skipped = pipeline | f"Source{index}" >> _ReadAndCheck(source)
            skipped.append(source_skipped)

        splits = {}
        for split in SPLITS:
            parts = []
            for index, read in enumerate(plan.splits[split]):
                low, high = read.keep
                keep_label = read.labelled
                parts.append(
                    checked[read.source()]
                    | f"Select[{split}{index}]" >> beam.Filter(lambda e, lo=low, hi=high: lo <= e[0] < hi)
                    | f"ToExample[{split}{index}]" >> beam.Map(
                        lambda e, labelled=keep_label: to_example(e[1], e[2] if labelled else UNLABELLED)))
            splits[split] = parts[0] if len(parts) == 1 else parts | f"Union[{split}]" >> beam.Flatten()

        _ = (skipped | "AllSkipped" >> beam.Flatten()
             | "WriteReport" >> beam.io.WriteToText(exec_properties[_REPORT_PROPERTY], shard_name_template="",
                                                    num_shards=1))
        return splits

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        """BaseExampleGenExecutor.Do without its Reshuffle of every example before writing.

        On the local in-process runner a Reshuffle holds the whole data set in memory (docs/data.md,
        "Streaming at scale"); here memory stays flat. The order is still mixed: image
        files are read in shuffled order (see _ReadAndCheck), TFDS shuffles its shards when it
        prepares them, and the Trainers shuffle again.
        """
        import tensorflow as tf
        from tfx.proto import example_gen_pb2
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        examples.split_names = artifact_utils.encode_split_names(list(SPLITS))  # always these three (see create)
        report = os.path.join(examples.uri, SKIPPED_REPORT)
        plan = self._plan(exec_properties)
        with self._make_beam_pipeline() as pipeline:
            splits = self.GenerateExamplesByBeam(pipeline, {**exec_properties, _REPORT_PROPERTY: report})
            for name in SPLITS:
                counted = splits[name] | f"Count[{name}]" >> beam.ParDo(_Count(name))
                _ = counted | f"Write[{name}]" >> beam.io.WriteToTFRecord(
                    os.path.join(artifact_utils.get_split_uri([examples], name), "data_tfrecord"),
                    file_name_suffix=".gz")
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")

        reasons = collections.Counter()
        with tf.io.gfile.GFile(report) as f:
            for line in f:
                if line.strip():
                    reasons[json.loads(line)["reason"].split(" (")[0]] += 1
        examples.set_int_custom_property(contract.SKIPPED_COUNT, sum(reasons.values()))
        examples.set_string_custom_property(contract.SKIPPED_BY_REASON, json.dumps(dict(reasons), sort_keys=True))
        examples.set_string_custom_property(contract.SKIPPED_REPORT, report)
        counts = _split_counts(getattr(pipeline, "result", None))
        record_plan(examples, plan, counts)
        empty = [split for split in SPLITS if not _has_a_record(artifact_utils.get_split_uri([examples], split))]
        if empty:
            raise ConfigError(f"the data in {exec_properties['input_base']} gives no {' and no '.join(empty)} "
                              f"example: nothing to train on; the served model is left as it is")

    def _plan(self, exec_properties) -> source_plan.SourcePlan:
        plan = source_plan.load_plan(exec_properties[contract.INPUT_BASE_PARAM])
        source_plan.check_has_images(plan, exec_properties[contract.INPUT_BASE_PARAM])
        return plan


def _has_a_record(split_uri: str) -> bool:
    """Whether the split's files hold at least one example (one record read, whatever the runner)."""
    import tensorflow as tf
    files = tf.io.gfile.glob(os.path.join(split_uri, "*"))
    return bool(files) and any(True for _ in tf.data.TFRecordDataset(files, compression_type="GZIP").take(1))


def _split_counts(result) -> dict[str, int]:
    """Examples written per split, from the Beam counters ({} where the runner reports none)."""
    if result is None:
        return {}
    from apache_beam.metrics.metric import MetricsFilter
    counts: dict[str, int] = {}
    try:
        for counter in result.metrics().query(MetricsFilter().with_namespace(_COUNTERS))["counters"]:
            value = counter.committed if counter.committed is not None else counter.attempted
            counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + int(value or 0)
    except (NotImplementedError, AttributeError, KeyError):
        return {}
    return counts


def record_plan(examples, plan: source_plan.SourcePlan, counts: dict[str, int] | None = None) -> None:
    """What the Trainers and the run summary need to know about the data this run read
    (`data_facts` reads it back)."""
    examples.set_string_custom_property(contract.CLASS_NAMES, json.dumps(plan.class_names, ensure_ascii=False))
    examples.set_int_custom_property(contract.NUM_CLASSES, plan.num_classes)
    examples.set_int_custom_property(contract.IMAGE_SIZE, plan.image_size)
    examples.set_string_custom_property(contract.DATA_FINGERPRINT, plan.content_fingerprint)
    examples.set_string_custom_property(contract.DATA_DESCRIPTION, plan.description)
    examples.set_int_custom_property(contract.DATA_SPAN, plan.span)
    examples.set_string_custom_property(contract.SOURCE_FILES, json.dumps(plan.source_files, sort_keys=True))
    if counts:
        examples.set_string_custom_property(contract.EXAMPLE_COUNTS, json.dumps(
            {split: counts.get(split, 0) for split in SPLITS}))


def data_facts(examples: types.Artifact) -> dict[str, Any]:
    """What ExampleGen recorded about the plan it read (`record_plan`), for the Trainers and the report."""
    facts = contract.examples_record(examples.mlmd_artifact)
    if facts is None:
        raise ConfigError(f"Examples {examples.uri} carry no class names: made by an ExampleGen older than this "
                          f"pipeline; re-run ExampleGen (disable the cache)")
    return facts


def create(input_base) -> FileBasedExampleGen:
    """The ExampleGen component: reads the plan in `input_base` (a path or a RuntimeParameter)."""
    return FileBasedExampleGen(
        input_base=input_base,
        # Every split names the plan file, so TFX fingerprints it (and thereby the sources).
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=split, pattern=source_plan.PLAN_FILE) for split in SPLITS]),
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor)).with_id(contract.EXAMPLE_GEN)
