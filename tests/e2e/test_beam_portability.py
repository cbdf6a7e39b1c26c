"""The data stages through Beam's portability framework (slow): ExampleGen, StatisticsGen,
SchemaGen, ExampleValidator, StopOnAnomalies and Transform with `--runner=PortableRunner` against
Beam's own in-process job service and a LOOPBACK environment, compared with the DirectRunner.

Flink, Spark and Dataflow Runner v2 run our Beam steps through this framework: the pipeline is
translated to its runner-API proto, every DoFn and closure pickled, and bundles executed by an SDK
worker over the Fn API, so what works only in the DirectRunner's own process (unpicklable
closures, module-level state, a local file a worker cannot see) fails here. Beam 2.73
(apache_beam/runners/portability/portable_runner.py): `--job_endpoint=embed` makes
`create_job_service` start `job_server.EmbeddedJobServer`, a `local_job_service.LocalJobServicer`
in this process (no Prism or Java job server to download); `--environment_type=LOOPBACK` makes
`start_and_replace_loopback_environments` start a worker pool here, reached over gRPC.
"""
import glob
import logging
import os

import pytest
import tensorflow as tf
from tfx import v1 as tfx

from simsiam_tfx.components import beam_dependencies, sources
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.features import SPLITS
from simsiam_tfx.pipeline.local_runner import pipeline_ir
from simsiam_tfx.pipeline.pipeline import data_stages
from simsiam_tfx.pipeline.summary import RunRecord

PORTABLE = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]
PER_SPLIT = (48, 32, 32)


def run_data_stages(output_dir: str, beam_args: list[str]) -> RunRecord:
    config = PipelineConfig(output_dir=output_dir, beam_pipeline_args=list(beam_args))
    config.data.shapes_per_split, config.data.image_size = PER_SPLIT, 16
    plan = sources.plan(config.validate().data, config.data_root)
    span = sources.write_span(plan, config.data_root)
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root,
        components=data_stages(config, span.folder).components(), enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path),
        beam_pipeline_args=list(beam_args))
    beam_dependencies.skip_staging_for_direct_runner()
    tfx.orchestration.LocalDagRunner().run_with_ir(pipeline_ir(pipeline))
    return RunRecord(config.metadata_path, config.pipeline_name)


def records_per_split(uri: str) -> dict[str, int]:
    return {split: sum(1 for path in glob.glob(os.path.join(glob.escape(uri), f"Split-{split}", "*"))
                       for _ in tf.data.TFRecordDataset(path, compression_type="GZIP"))
            for split in SPLITS}


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


@pytest.mark.slow
def test_data_stages_run_through_the_portable_runner_as_through_the_direct_runner(tmp_path, caplog):
    direct = run_data_stages(str(tmp_path / "direct"), PipelineConfig().beam_pipeline_args)
    with caplog.at_level(logging.INFO, logger="apache_beam.runners.portability"):
        portable = run_data_stages(str(tmp_path / "portable"), PORTABLE)
    # Each Beam stage (ExampleGen, StatisticsGen, Transform) was a job of the portable job service.
    assert sum("Job state changed to DONE" in r.getMessage() for r in caplog.records) >= 3
    for record in (direct, portable):
        assert set(record.executions) == {"ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator",
                                          "StopOnAnomalies", "Transform"}
    examples = {name: records_per_split(r.output("ExampleGen", "examples").uri)
                for name, r in (("direct", direct), ("portable", portable))}
    assert examples["portable"] == examples["direct"] == dict(zip(SPLITS, PER_SPLIT))
    transformed = {name: records_per_split(r.output("Transform", "transformed_examples").uri)
                   for name, r in (("direct", direct), ("portable", portable))}
    assert transformed["portable"] == transformed["direct"] == dict(zip(SPLITS, PER_SPLIT))
    schema = {name: read(os.path.join(r.output("SchemaGen", "schema").uri, "schema.pbtxt"))
              for name, r in (("direct", direct), ("portable", portable))}
    assert schema["portable"] == schema["direct"]
    graph = {name: read(os.path.join(r.output("Transform", "transform_graph").uri, "transformed_metadata",
                                      "schema.pbtxt")) for name, r in (("direct", direct), ("portable", portable))}
    assert graph["portable"] == graph["direct"]
