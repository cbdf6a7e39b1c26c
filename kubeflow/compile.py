"""Compiles the pipeline for Kubeflow Pipelines (bare KFP spec, YAML) or Vertex AI (PipelineJob, JSON).

Compilation is offline: the Trainer/Transform code is referenced by importable path and lives in the
image, so nothing is uploaded and no credentials or bucket access are needed.

Runtime parameters. TFX 1.21's KubeflowV2DagRunner only accepts a RuntimeParameter (int, float or str)
as a *whole* execution property; one inside a dict or proto (epochs in the Trainers' custom_config,
the floor in the Evaluator's EvalConfig) is not substituted. So:
  - input_base      (str): ExampleGen's data plan (a folder holding sources.json);
  - trainer_config  (str): the Trainers' whole custom_config JSON (epochs and every training setting);
  - eval_config     (str): the Evaluator's whole EvalConfig JSON (accuracy floor, allowed regression).
`run_parameters()` renders the last two from a PipelineConfig, so the CLI can change epochs or the
floor per run without the user writing JSON.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any

from simsiam_tfx.config import ConfigError, PipelineConfig

PARAM_INPUT_BASE = "input_base"
PARAM_TRAINER_CONFIG = "trainer_config"
PARAM_EVAL_CONFIG = "eval_config"
TARGETS = ("kfp", "vertex")


@dataclasses.dataclass
class KubeflowConfig:
    """What only the Kubeflow/Vertex deployment needs; the pipeline itself is PipelineConfig."""
    image: str = ""
    pipeline_root: str = ""  # gs://bucket/path (Vertex) or any object-store URI the KFP cluster reads
    input_base: str = ""  # default data location; a runtime parameter, so runs may override it
    num_classes: int = 10
    trainer_cpu: float | None = None  # vCPUs per Trainer
    trainer_memory: float | None = None  # GB per Trainer
    trainer_gpus: int = 0
    gpu_type: str = "NVIDIA_TESLA_T4"  # Vertex accelerator name; KFP passes it to the node selector
    # Beam flags for StatisticsGen/Transform/Evaluator...; None keeps PipelineConfig's (in-process).
    beam_pipeline_args: list[str] | None = None

    def validate(self) -> KubeflowConfig:
        if not self.image:
            raise ConfigError("--image is required (the container image with this project installed)")
        if not self.pipeline_root:
            raise ConfigError("--pipeline-root is required (e.g. gs://bucket/simsiam)")
        if "://" not in self.pipeline_root:
            raise ConfigError(f"--pipeline-root must be a URI the cluster can reach (gs://...), "
                              f"got {self.pipeline_root!r}")
        if self.num_classes < 2:
            raise ConfigError(f"--num-classes must be >= 2, got {self.num_classes}")
        if self.trainer_gpus < 0 or (self.trainer_cpu or 0) < 0 or (self.trainer_memory or 0) < 0:
            raise ConfigError("trainer resources must be non-negative")
        return self

    def data_location(self) -> str:
        return self.input_base or self.pipeline_root.rstrip("/") + "/data"


def run_parameters(config: PipelineConfig, kconfig: KubeflowConfig) -> dict[str, str]:
    """Values of every runtime parameter for this configuration (the compiled defaults)."""
    from simsiam_tfx.components.trainer_config import custom_config_json
    from simsiam_tfx.pipeline.pipeline import eval_config_json
    return {PARAM_INPUT_BASE: kconfig.data_location(),
            PARAM_TRAINER_CONFIG: custom_config_json(config, kconfig.num_classes),
            PARAM_EVAL_CONFIG: eval_config_json(config.eval)}


def resource_spec(kconfig: KubeflowConfig):
    from kfp.pipeline_spec import pipeline_spec_pb2
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if kconfig.trainer_cpu:
        spec.cpu_limit = kconfig.trainer_cpu
    if kconfig.trainer_memory:
        spec.memory_limit = kconfig.trainer_memory
    if kconfig.trainer_gpus:
        spec.accelerator.type = kconfig.gpu_type
        spec.accelerator.count = kconfig.trainer_gpus
    return spec


def build_pipeline(config: PipelineConfig, kconfig: KubeflowConfig):
    """create_pipeline() with the runtime parameters and Trainer resources of a cluster run."""
    from tfx import v1 as tfx

    from simsiam_tfx.pipeline.pipeline import RuntimeParameters, create_pipeline

    kconfig.validate()
    # Everything (pipeline root, pushed models) lives under the pipeline root; no local MLMD store.
    config = dataclasses.replace(config, output_dir=kconfig.pipeline_root.rstrip("/"))
    if kconfig.beam_pipeline_args is not None:
        config.beam_pipeline_args = list(kconfig.beam_pipeline_args)
    defaults = run_parameters(config.validate(), kconfig)
    params = {name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=str, default=value)
              for name, value in defaults.items()}
    runtime = RuntimeParameters(input_base=params[PARAM_INPUT_BASE], trainer_config=params[PARAM_TRAINER_CONFIG],
                                eval_config=params[PARAM_EVAL_CONFIG])
    resources = resource_spec(kconfig) if (kconfig.trainer_cpu or kconfig.trainer_memory or kconfig.trainer_gpus) \
        else None
    pipeline = create_pipeline(config, "", kconfig.num_classes, runtime=runtime, trainer_platform_config=resources)
    return pipeline, defaults


def compile_pipeline(config: PipelineConfig, kconfig: KubeflowConfig, output: str, target: str) -> str:
    """Writes the compiled pipeline to `output`: .yaml (kfp) or .json (vertex). Returns the path."""
    import yaml
    from tfx import v1 as tfx

    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    want = ".yaml" if target == "kfp" else ".json"
    if not output.endswith(want if target == "vertex" else (".yaml", ".yml")):
        raise ConfigError(f"--output for --target {target} must end in {want}, got {output!r}")
    pipeline, defaults = build_pipeline(config, kconfig)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=kconfig.image, use_pipeline_spec_2_1=True),  # 2.1: what KFP 2 and Vertex read
        output_dir=tempfile.gettempdir(), output_filename="unused")
    job = runner.run(pipeline, parameter_values=defaults, write_out=False)
    spec = job["pipelineSpec"]
    # TFX leaves the root parameters without defaults; KFP would then demand every value on each run.
    for name, value in defaults.items():
        spec["root"]["inputDefinitions"]["parameters"][name].update(defaultValue=value, isOptional=True)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        if target == "kfp":
            yaml.safe_dump(spec, f, sort_keys=True)
        else:
            json.dump(job, f, sort_keys=True, indent=1)
    return output


def load_spec(path: str) -> dict[str, Any]:
    """Reads a compiled file back: the PipelineSpec dict, from either format."""
    import yaml
    try:
        with open(path) as f:
            data = yaml.safe_load(f)  # JSON is YAML too
    except OSError as e:
        raise ConfigError(f"cannot read pipeline file {path}: {e.strerror}") from None
    if not isinstance(data, dict) or not ("pipelineSpec" in data or "root" in data):
        raise ConfigError(f"{path} is not a compiled pipeline (no pipelineSpec/root)")
    return data.get("pipelineSpec", data)
