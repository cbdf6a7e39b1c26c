"""The data stages through Beam's portability framework (slow): ExampleGen, StatisticsGen,
SchemaGen, ExampleValidator, StopOnAnomalies and Transform with `--runner=PortableRunner` against
Beam's own in-process job service and a LOOPBACK environment whose SDK workers are separate
processes, compared with the DirectRunner; and ExampleGen alone on the other kinds of source (an
image folder of awkward files, a prepared TFDS data set), whose DoFns the embedded data skips.

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
from simsiam_tfx.components import beam_dependencies, example_gen, source_plan
from simsiam_tfx.config import DataConfig, PipelineConfig
from simsiam_tfx.features import SPLITS
from simsiam_tfx.pipeline.local_runner import pipeline_ir
from simsiam_tfx.pipeline.pipeline import data_stages
from simsiam_tfx.pipeline.summary import RunRecord
from tests import data_factory

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK",
            "--experiments=use_loopback_process_worker"]
PER_SPLIT = (48, 32, 32)
BEAM_STAGES = 3  # ExampleGen, StatisticsGen, Transform: one Beam job each
JOB_DONE = "Job state changed to DONE"  # portable_runner.py, PipelineResult.wait_until_finish
WORKER_STARTED = "Starting worker with command"  # worker_pool_main.py, StartWorker (process workers)


def run_data_stages(output_dir: str, beam_args: list[str]) -> RunRecord:
    config = PipelineConfig(output_dir=output_dir, beam_pipeline_args=list(beam_args))
    config.data.shapes_per_split, config.data.image_size = PER_SPLIT, 16
    plan = source_plan.plan(config.validate().data, config.data_root)
    span = source_plan.write_span(plan, config.data_root)
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
def test_data_stages_run_through_the_portable_runner_as_through_the_direct_runner(
        tmp_path, caplog, worker_python, no_tfx_package):
    with caplog.at_level(logging.INFO, logger="apache_beam"):
        direct = run_data_stages(str(tmp_path / "direct"), PipelineConfig().beam_pipeline_args)
        assert beam_log_count(caplog, JOB_DONE) == beam_log_count(caplog, WORKER_STARTED) == 0
        caplog.clear()
        portable = run_data_stages(str(tmp_path / "portable"), PORTABLE)
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

    expected_counts = dict(zip(SPLITS, PER_SPLIT))
    examples = each(lambda r: examples_per_split(r.output(contract.EXAMPLE_GEN, "examples")))
    assert {split: len(e) for split, e in examples["direct"].items()} == expected_counts
    assert examples["portable"] == examples["direct"]
    # ExampleGen's per-split counts come from Beam counters, read back through the runner's metrics.
    counted = each(lambda r: json.loads(
        r.output(contract.EXAMPLE_GEN, "examples").custom_properties["example_counts"].string_value))
    assert counted["portable"] == counted["direct"] == expected_counts
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


def run_example_gen(data: DataConfig, work, beam_args: list[str]):
    """ExampleGen's executor as TFX runs it; returns its examples artifact."""
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils
    plan = source_plan.plan(data, str(work / "data"))
    component = example_gen.create(source_plan.write_plan(plan, str(work / "data")))
    examples = standard_artifacts.Examples()
    examples.uri = str(work / "examples")
    props = {key: value if isinstance(value, (str, int)) else proto_utils.proto_to_json(value)
             for key, value in component.exec_properties.items() if value is not None}
    props["output_file_format"] = example_gen_pb2.FORMAT_TFRECORDS_GZIP
    props["output_data_format"] = example_gen_pb2.FORMAT_TF_EXAMPLE
    beam_dependencies.skip_staging_for_direct_runner()
    executor = example_gen.Executor(example_gen.Executor.Context(beam_pipeline_args=list(beam_args),
                                                                 tmp_dir=str(work)))
    executor.Do({}, {"examples": [examples]}, props)
    return examples


@pytest.mark.slow
def test_example_gen_reads_image_folders_and_tfds_through_the_portable_runner_as_through_the_direct_runner(
        tmp_path, caplog, worker_python, no_tfx_package):
    """The other sources' DoFns (the data stages above read the embedded TFRecords): an image folder
    of awkward files (fileio matching, the per-file check, skips) for pre-training and a prepared
    TFDS data set for the probe, in one ExampleGen run."""
    photos, tfds_dir = tmp_path / "photos", str(tmp_path / "tfds")
    data_factory.write_awkward_folder(str(photos), with_huge=False)
    data_factory.prepare_tfds("cifar10", tfds_dir)
    data = DataConfig(pretrain_images=str(photos), probe_dataset="cifar10", tfds_data_dir=tfds_dir)
    runs = {"direct": run_example_gen(data, tmp_path / "direct", PipelineConfig().beam_pipeline_args)}
    with caplog.at_level(logging.INFO, logger="apache_beam"):
        runs["portable"] = run_example_gen(data, tmp_path / "portable", PORTABLE)
        assert beam_log_count(caplog, JOB_DONE) == 1 and beam_log_count(caplog, WORKER_STARTED) >= 1

    examples = {name: examples_per_split(artifact) for name, artifact in runs.items()}
    assert all(examples["direct"].values())  # every split has examples
    assert examples["portable"] == examples["direct"]
    for prop in ("example_counts", "skipped_by_reason"):
        values = {name: json.loads(artifact.get_string_custom_property(prop)) for name, artifact in runs.items()}
        assert values["portable"] == values["direct"], prop
    reports = {name: sorted(read(artifact.get_string_custom_property("skipped_report")).splitlines())
               for name, artifact in runs.items()}
    assert reports["direct"]  # the awkward folder's unusable files, each named
    assert reports["portable"] == reports["direct"]
