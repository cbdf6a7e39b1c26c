"""The data stages through Beam's portability framework (slow): ExampleGen, StatisticsGen,
SchemaGen, ExampleValidator, StopOnAnomalies and Transform with `--runner=PortableRunner` against
Beam's own in-process job service and a LOOPBACK environment whose SDK workers are separate
processes, compared with the DirectRunner, on every kind of source in one ExampleGen: an image
folder of awkward files, the embedded data set's TFRecords and a prepared TFDS data set.

Flink, Spark and Dataflow Runner v2 run our Beam steps through this framework: the pipeline is
translated to its runner-API proto, every DoFn and closure pickled, and bundles executed by an SDK
worker over the Fn API, so what works only in the DirectRunner's own process (unpicklable
closures, module-level state set up by the caller) fails here. Beam 2.73
(apache_beam/runners/portability/portable_runner.py):
- `--job_endpoint=embed`: `PortableRunner.create_job_service` starts `job_server.EmbeddedJobServer`,
  a `local_job_service.LocalJobServicer` in this process (no Prism or Java job server to download);
- `--environment_type=LOOPBACK`: `PortableRunner.start_and_replace_loopback_environments` starts a
  `worker_pool_main.BeamFnExternalWorkerPoolServicer` and points the job at it over gRPC;
- `--experiments=use_loopback_process_worker` (same function): that pool starts every SDK worker as
  a new `python -c "...SdkHarness(...).run()"` process (`BeamFnExternalWorkerPoolServicer.StartWorker`)
  instead of a thread of this process, so nothing this process set up in memory reaches the DoFns.
"""
import dataclasses
import glob
import json
import logging
import os
import shlex
import sys

import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx.utils import dependency_utils

from simsiam_tfx import contract
from simsiam_tfx.components import beam_dependencies, source_plan
from simsiam_tfx.config import DataConfig, PipelineConfig
from simsiam_tfx.features import SPLITS
from simsiam_tfx.pipeline.local_runner import pipeline_ir
from simsiam_tfx.pipeline.pipeline import data_stages
from simsiam_tfx.pipeline.summary import RunRecord
from tests import data_factory

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK",
            "--experiments=use_loopback_process_worker"]
IMAGE_SIZE = 16
EMBEDDED_PER_SPLIT = (48, 32, 32)
BEAM_STAGES = 3  # ExampleGen, StatisticsGen, Transform: one Beam job each
JOB_DONE = "Job state changed to DONE"  # portable_runner.py, PipelineResult.wait_until_finish
WORKER_STARTED = "Starting worker with command"  # worker_pool_main.py, StartWorker (process workers)


def every_kind_of_source(photos: str, tfds_dir: str, data_root: str) -> source_plan.SourcePlan:
    """Pre-training on the image folder and on the embedded data's TFRecords; probe and evaluation on
    the prepared TFDS data set. No flag names three sources, but a split's sources are read as a
    union (as are the parts of a source cut by hash), so one ExampleGen runs every source's DoFns."""
    folder_and_tfds = source_plan.plan(DataConfig(pretrain_images=photos, probe_dataset="cifar10",
                                                  tfds_data_dir=tfds_dir, image_size=IMAGE_SIZE), data_root)
    embedded = source_plan.plan(DataConfig(shapes_per_split=EMBEDDED_PER_SPLIT, image_size=IMAGE_SIZE), data_root)
    plan = dataclasses.replace(folder_and_tfds, splits={
        **folder_and_tfds.splits, "pretrain": folder_and_tfds.splits["pretrain"] + embedded.splits["pretrain"]})
    plan.content_fingerprint = source_plan.content_fingerprint(plan)
    plan.source_files = {**folder_and_tfds.source_files, **embedded.source_files}
    return plan


def run_data_stages(output_dir: str, beam_args: list[str], photos: str, tfds_dir: str) -> RunRecord:
    config = PipelineConfig(output_dir=output_dir, beam_pipeline_args=list(beam_args))
    config.data.image_size = IMAGE_SIZE
    span = source_plan.write_span(every_kind_of_source(photos, tfds_dir, config.data_root), config.data_root)
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=data_stages(config, span.folder).components(), enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path),
        beam_pipeline_args=list(beam_args))
    beam_dependencies.skip_staging_for_direct_runner()
    tfx.orchestration.LocalDagRunner().run_with_ir(pipeline_ir(pipeline))
    return RunRecord(config.metadata_path, config.pipeline_name)


def examples_per_split(artifact) -> dict[str, list[bytes]]:
    """Every tf.Example of each split, re-serialized deterministically (map order fixed) and sorted:
    equal lists mean the same examples, whatever order the runner wrote them in."""
    out = {}
    for split in SPLITS:
        files = glob.glob(os.path.join(glob.escape(artifact.uri), f"Split-{split}", "*"))
        out[split] = sorted(tf.train.Example.FromString(record.numpy()).SerializeToString(deterministic=True)
                            for path in files for record in tf.data.TFRecordDataset(path, compression_type="GZIP"))
    return out


def statistics_counts(artifact) -> dict[str, int]:
    import tensorflow_data_validation as tfdv
    return {split: int(tfdv.load_stats_binary(os.path.join(artifact.uri, f"Split-{split}", "FeatureStats.pb"))
                       .datasets[0].num_examples) for split in SPLITS}


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def worker_python(tmp_path, monkeypatch):
    """Beam's pool starts process workers as plain `python` (worker_pool_main.py, StartWorker): make
    that this interpreter, virtual environment included, whatever PATH held."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture
def no_tfx_package(monkeypatch):
    """TFX packaging itself for the workers fails the run: a LOOPBACK environment needs nothing
    shipped (components/beam_dependencies.py)."""
    def build_ephemeral_package():
        raise AssertionError("TFX packaged itself for Beam workers")
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", build_ephemeral_package)


def beam_log_count(caplog, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


@pytest.mark.slow
def test_data_stages_on_every_kind_of_source_run_through_the_portable_runner_as_through_the_direct_runner(
        tmp_path, caplog, worker_python, no_tfx_package):
    photos, tfds_dir = str(tmp_path / "photos"), str(tmp_path / "tfds")
    outcomes = data_factory.write_awkward_folder(photos, with_huge=False)
    data_factory.prepare_tfds("cifar10", tfds_dir)
    with caplog.at_level(logging.INFO, logger="apache_beam"):
        direct = run_data_stages(str(tmp_path / "direct"), PipelineConfig().beam_pipeline_args, photos, tfds_dir)
        assert beam_log_count(caplog, JOB_DONE) == beam_log_count(caplog, WORKER_STARTED) == 0
        caplog.clear()
        portable = run_data_stages(str(tmp_path / "portable"), PORTABLE, photos, tfds_dir)
        # Each Beam stage was a job of the portable job service, run by an SDK worker process.
        assert beam_log_count(caplog, JOB_DONE) == BEAM_STAGES
        assert beam_log_count(caplog, WORKER_STARTED) >= BEAM_STAGES

    runs = {"direct": direct, "portable": portable}
    for record in runs.values():
        assert set(record.executions) == {contract.EXAMPLE_GEN, contract.STATISTICS_GEN, contract.SCHEMA_GEN,
                                          contract.EXAMPLE_VALIDATOR, contract.STOP_ON_ANOMALIES, contract.TRANSFORM}
        assert set(record.states().values()) == {"executed"}

    def each(read_one):
        return {name: read_one(record) for name, record in runs.items()}

    layout = data_factory.TFDS_LAYOUTS["cifar10"]
    images_kept = sum(outcome in ("keep", "convert") for outcome in outcomes.values())
    expected_counts = {"pretrain": images_kept + EMBEDDED_PER_SPLIT[0], "probe_train": layout["train"],
                       "eval": layout["test"]}
    examples = each(lambda r: examples_per_split(r.output(contract.EXAMPLE_GEN, "examples")))
    assert {split: len(e) for split, e in examples["direct"].items()} == expected_counts
    assert examples["portable"] == examples["direct"]
    # ExampleGen's counts come from Beam counters, read back through the runner's metrics; the
    # folder's unusable files are each named, with their reason, through the same side output.
    def examples_property(name):
        return each(lambda r: r.output(contract.EXAMPLE_GEN, "examples").custom_properties[name].string_value)

    for prop in (contract.EXAMPLE_COUNTS, contract.SKIPPED_BY_REASON):
        values = {run: json.loads(value) for run, value in examples_property(prop).items()}
        assert values["portable"] == values["direct"], prop
    assert json.loads(examples_property(contract.EXAMPLE_COUNTS)["direct"]) == expected_counts
    reports = {run: sorted(read(path).splitlines()) for run, path in examples_property(contract.SKIPPED_REPORT).items()}
    # In an unlabelled tree every file is a candidate image (an empty folder is nothing).
    unusable = {path for path, outcome in outcomes.items() if outcome.startswith("skip:") and os.path.isfile(path)}
    assert {json.loads(line)["item"] for line in reports["direct"]} == unusable
    assert reports["portable"] == reports["direct"]
    assert each(lambda r: statistics_counts(r.output(contract.STATISTICS_GEN, "statistics"))) == {
        "direct": expected_counts, "portable": expected_counts}
    schema = each(lambda r: read(os.path.join(r.output(contract.SCHEMA_GEN, "schema").uri, "schema.pbtxt")))
    assert schema["portable"] == schema["direct"]
    transformed = each(lambda r: examples_per_split(r.output(contract.TRANSFORM, "transformed_examples")))
    assert {split: len(e) for split, e in transformed["direct"].items()} == expected_counts
    assert transformed["portable"] == transformed["direct"]
    graph_schema = each(lambda r: read(os.path.join(r.output(contract.TRANSFORM, "transform_graph").uri,
                                                    "transformed_metadata", "schema.pbtxt")))
    assert graph_schema["portable"] == graph_schema["direct"]
