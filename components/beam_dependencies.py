"""What the Beam-based components (ExampleGen, StatisticsGen, Transform, Evaluator) ship to Beam workers.

When the Beam flags name no dependency, TFX 1.21 packages its own installation for remote workers
before every Beam component runs (tfx/dsl/components/base/base_beam_executor.py calls
tfx/utils/dependency_utils.py make_beam_dependency_flags -> build_ephemeral_package): it copies the
installed `tfx` into a fresh temporary folder, builds an sdist there and never deletes the folder.
Neither half is of use to us:

- Beam in this process (the DirectRunner, our default locally and in every cluster step) has no
  remote workers, nor has a LOOPBACK environment of a portable runner (its SDK workers are threads
  of this process or `python` processes it starts); the copy costs seconds per component and leaks
  a temporary folder per component run. `skip_staging_for_direct_runner` makes TFX leave such flags
  alone.
- Remote workers (Dataflow, Flink, Spark) need our code as well as TFX: ExampleGen's DoFns are
  ours. `with_worker_image` points them at the pipeline's image, which has both.
"""
from __future__ import annotations

import functools

# The flags with which TFX considers the dependencies given (dependency_utils.py, same function).
DEPENDENCY_FLAGS = ("extra_packages", "setup_file", "requirements_file", "worker_harness_container_image",
                    "sdk_container_image")


def _options(beam_pipeline_args: list[str]) -> dict:
    from apache_beam.options.pipeline_options import PipelineOptions
    # retain_unknown_options: Beam would otherwise log every flag it does not know with its value,
    # secrets included.
    return PipelineOptions(flags=list(beam_pipeline_args)).get_all_options(retain_unknown_options=True)


def _in_process(options: dict) -> bool:
    # A LOOPBACK environment's SDK workers are this process's threads, or with the experiment
    # use_loopback_process_worker `python -c ...` processes it starts (Beam 2.73 portable_runner.py,
    # start_and_replace_loopback_environments; worker_pool_main.py, StartWorker): like the
    # DirectRunner's, they import what this machine's Python has and install nothing shipped.
    if (options.get("environment_type") or "").upper() == "LOOPBACK":
        return True
    runner = options.get("runner") or "DirectRunner"
    return runner.rsplit(".", 1)[-1].endswith("DirectRunner")


def runs_in_process(beam_pipeline_args: list[str]) -> bool:
    """True when Beam's workers run on this machine, from this Python environment: any DirectRunner
    mode, or a LOOPBACK environment (a PROCESS or EXTERNAL one may be on another machine)."""
    return _in_process(_options(beam_pipeline_args))


def with_worker_image(beam_pipeline_args: list[str], image: str) -> list[str]:
    """The flags, plus `--sdk_container_image` when Beam runs on remote workers and the flags say
    nothing of their dependencies: the Docker image the portable runner is given
    (`--environment_config`), else `image`."""
    args = list(beam_pipeline_args)
    options = _options(args)
    if _in_process(options) or any(options.get(flag) for flag in DEPENDENCY_FLAGS):
        return args
    if (options.get("environment_type") or "").upper() == "DOCKER" and options.get("environment_config"):
        image = options["environment_config"]
    return args + [f"--sdk_container_image={image}"]


def skip_staging_for_direct_runner() -> None:
    """From now on in this process, TFX's Beam executors package nothing for a DirectRunner or a
    LOOPBACK environment (`runs_in_process`); other runners keep TFX's behaviour. Idempotent."""
    from tfx.utils import dependency_utils
    tfx_flags = dependency_utils.make_beam_dependency_flags
    if getattr(tfx_flags, "skips_direct_runner", False):
        return

    @functools.wraps(tfx_flags)
    def make_beam_dependency_flags(beam_pipeline_args: list[str]) -> list[str]:
        if runs_in_process(beam_pipeline_args):
            return list(beam_pipeline_args)
        return tfx_flags(beam_pipeline_args)
    make_beam_dependency_flags.skips_direct_runner = True
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags
