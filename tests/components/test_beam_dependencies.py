"""TFX's Beam executors stage nothing for an in-process DirectRunner; remote workers get the image."""
import inspect

import pytest
from tfx.utils import dependency_utils

from simsiam_tfx.components import beam_dependencies
from simsiam_tfx.config import PipelineConfig

IMAGE = "registry.example/simsiam-tfx:1"
DATAFLOW = ["--runner=DataflowRunner", "--project=p", "--region=europe-west4"]
FLINK = ["--runner=PortableRunner", "--job_endpoint=flink:8099", "--environment_type=DOCKER",
         "--environment_config=registry.example/other:2"]
# Beam's own in-process job service, SDK workers on this machine from this Python environment: threads
# of this process, or with use_loopback_process_worker `python` processes (tests/e2e/test_beam_portability.py).
PORTABLE_LOOPBACK = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"]
PORTABLE_LOOPBACK_PROCESSES = PORTABLE_LOOPBACK + ["--experiments=use_loopback_process_worker"]


@pytest.fixture
def no_tfx_package(monkeypatch):
    """TFX's own function (as before any patch in this process) with its packaging made to fail
    loudly; both restored after the test."""
    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags",
                        inspect.unwrap(dependency_utils.make_beam_dependency_flags))

    def build_ephemeral_package():
        raise AssertionError("TFX packaged itself for Beam workers")
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", build_ephemeral_package)


@pytest.mark.parametrize("args, in_process", [
    (PipelineConfig().beam_pipeline_args, True), ([], True),
    (["--runner=DirectRunner", "--direct_running_mode=multi_processing"], True),
    (PORTABLE_LOOPBACK, True), (PORTABLE_LOOPBACK_PROCESSES, True), (FLINK[:2] + ["--environment_type=loopback"], True),
    (DATAFLOW, False), (FLINK, False), (PORTABLE_LOOPBACK[:2], False),  # PortableRunner's default: DOCKER
    # PROCESS and EXTERNAL workers may run on other machines (a Flink task manager): TFX stages as before.
    (PORTABLE_LOOPBACK[:2] + ["--environment_type=PROCESS"], False),
    (PORTABLE_LOOPBACK[:2] + ["--environment_type=EXTERNAL", "--environment_config=localhost:50000"], False)])
def test_runs_in_process(args, in_process):
    assert beam_dependencies.runs_in_process(args) is in_process


@pytest.mark.parametrize("args", [PipelineConfig().beam_pipeline_args, PORTABLE_LOOPBACK_PROCESSES])
def test_beam_executor_running_beam_on_this_machine_stages_nothing(no_tfx_package, args):
    from tfx.components.statistics_gen.executor import Executor
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    with pytest.raises(AssertionError, match="packaged itself"):  # TFX alone packages itself
        Executor(BaseBeamExecutor.Context(beam_pipeline_args=list(args)))
    beam_dependencies.skip_staging_for_direct_runner()
    beam_dependencies.skip_staging_for_direct_runner()  # idempotent: one wrapper
    executor = Executor(BaseBeamExecutor.Context(beam_pipeline_args=list(args)))
    assert not any("extra_package" in arg for arg in executor._beam_pipeline_args)  # pylint: disable=protected-access


def test_a_remote_runner_keeps_tfx_staging(no_tfx_package, monkeypatch):
    beam_dependencies.skip_staging_for_direct_runner()
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", lambda: "/tmp/tfx_ephemeral.tar.gz")
    assert dependency_utils.make_beam_dependency_flags(DATAFLOW) == DATAFLOW + [
        "--extra_package=/tmp/tfx_ephemeral.tar.gz"]


@pytest.mark.parametrize("args, expected", [
    (PipelineConfig().beam_pipeline_args, PipelineConfig().beam_pipeline_args),
    (PORTABLE_LOOPBACK, PORTABLE_LOOPBACK),
    (DATAFLOW, DATAFLOW + [f"--sdk_container_image={IMAGE}"]),
    (DATAFLOW + ["--sdk_container_image=mine:3"], DATAFLOW + ["--sdk_container_image=mine:3"]),
    (DATAFLOW + ["--requirements_file=r.txt"], DATAFLOW + ["--requirements_file=r.txt"]),
    (FLINK, FLINK + ["--sdk_container_image=registry.example/other:2"])])
def test_remote_workers_get_the_pipeline_image_unless_told(args, expected):
    assert beam_dependencies.with_worker_image(args, IMAGE) == expected
