"""Compiles the pipeline for Kubeflow Pipelines (bare KFP spec, YAML) or Vertex AI (PipelineJob, JSON).

Compilation is offline: the Trainer/Transform code is referenced by importable path and lives in the
image, so nothing is uploaded and no credentials or bucket access are needed.

Runtime parameters. TFX 1.21's KubeflowV2DagRunner only accepts a RuntimeParameter (int, float or str)
as a *whole* execution property; one inside a dict or proto (epochs in the Trainers' custom_config,
the floor in the Evaluator's EvalConfig) is not substituted. So:
  - input_base      (str): the data location: the span root (default <pipeline root>/data) where the
                           first step, PlanData (kubeflow/plan_step.py), writes span-<N>/sources.json
                           when the data changed, or a folder holding a sources.json pinned by hand;
  - data_config     (str): the data settings (DataConfig JSON) PlanData plans the data with;
  - trainer_config  (str): the Trainers' whole custom_config JSON (epochs and every training setting);
  - eval_config     (str): the Evaluator's whole EvalConfig JSON (accuracy floor, allowed regression).
`run_parameters()` renders the last two from a PipelineConfig, so the CLI can change epochs or the
floor per run without the user writing JSON.

After TFX's compiler, per target (`finish_spec`):
  - the runner's duties (pipeline/runner_duties.py): the baseline lookup's cache is off, and
    PlanData, an uncached container task, runs first and resolves the data version; ExampleGen's
    `input_base` is PlanData's output parameter (a `taskOutputParameter`), so its cache key holds
    the span folder and follows the data on both launchers (kubeflow/plan_step.py says why);
  - every step runs our entrypoint (kubeflow/entrypoint.py), which restores the input types the
    open-source KFP driver leaves out, then runs TFX's;
  - the Trainers run the GPU image when GPUs are requested, with the accelerator named as the
    target reads it: Vertex's machine-spec names (NVIDIA_TESLA_T4, ...), while the open-source KFP
    driver uses the type verbatim as the Kubernetes resource name (backend/src/v2/driver/driver.go,
    `res.Limits[k8score.ResourceName(acceleratorType)]`), so there it is `nvidia.com/gpu`;
  - a KFP spec is checked to hold only `container` and `importer` executors, the only kinds the
    open-source backend runs (backend/src/v2/compiler/argocompiler/dag.go);
  - the pipeline root TFX writes under (`<pipeline root>/tfx`, the Vertex job's
    gcsOutputDirectory) is also the spec's `defaultPipelineRoot`. The open-source backend reads
    neither: a run takes the root its create request carries, else the namespace's kfp-launcher
    ConfigMap, else minio://mlpipeline/v2/artifacts (backend/src/v2/driver/root_dag.go), so
    `kfp run|schedule` send it (kubeflow/commands.py). A root is checked at compile and run time:
    its scheme must be one TensorFlow (the pipeline image's, the same version) opens, and for KFP
    also one the launcher can copy to the pod (component/launcher_v2.go LocalPathForURI);
  - every Beam step requests CPU and memory (KFP: requests, so the pods are not BestEffort;
    Vertex: limits, which pick the machine); for KFP, every step with input artifacts can get a
    volume for the launcher's copy of them (kfp-kubernetes' generic ephemeral volume, mounted where
    the launcher downloads gs:// artifacts: /gcs);
  - images are named by digest: KFP and Vertex put the image string in each step's cache key, so
    a tag pushed again with new code would hit the old cache entries.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import re
import tempfile
import warnings
from typing import Any

from simsiam_tfx import contract
from simsiam_tfx.config import ConfigError, PipelineConfig
from simsiam_tfx.files import is_remote

# the ones create_pipeline takes
TFX_PARAMETERS = (contract.INPUT_BASE_PARAM, contract.TRAINER_CONFIG_PARAM, contract.EVAL_CONFIG_PARAM)


def executor_label(node_id: str) -> str:
    """The executor a compiled node runs under: TFX's naming (tfx/orchestration/kubeflow/v2/
    step_builder.py `_EXECUTOR_LABEL_PATTERN`), kept for PlanData, which this module adds."""
    return f"{node_id}_executor"


PLAN_EXECUTOR = executor_label(contract.PLAN_DATA)
PLAN_COMMAND = ["python", "-m", "simsiam_tfx.kubeflow.plan_step"]
TARGETS = ("kfp", "vertex")
ENTRYPOINT = ["python", "-m", "simsiam_tfx.kubeflow.entrypoint"]
TRAINER_EXECUTORS = (executor_label(contract.PRETRAIN), executor_label(contract.PROBE))
KFP_EXECUTOR_KINDS = ("container", "importer")
VERTEX_DEFAULT_GPU = "NVIDIA_TESLA_T4"
KFP_GPU_RESOURCE = "nvidia.com/gpu"
# google-cloud-aiplatform, imported by tfx.v1 (its Vertex extension) and by `vertex`, warns on import
# that it will drop google-cloud-storage < 3. Apache Beam 2.73's [gcp] extra (TFX 1.21's) requires
# storage < 3, so the locked set cannot follow and a user can do nothing about it: exactly that
# FutureWarning is hidden on those imports, nothing else.
_STORAGE_NOTICE = r"Support for google-cloud-storage < 3\.0\.0 will be removed"


def import_quietly(module: str):
    """`module` (tfx.v1, google.cloud.aiplatform) imported without aiplatform's storage notice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_STORAGE_NOTICE, category=FutureWarning)
        return importlib.import_module(module)


# component/launcher_v2.go LocalPathForURI: the stores the KFP launcher copies artifacts from and to.
KFP_LAUNCHER_SCHEMES = ("gs", "minio", "s3")
KFP_INPUT_MOUNT = "/gcs"  # where the launcher downloads gs:// inputs (LocalPathForURI)
INPUT_VOLUME = "inputs-copy"
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_DESCRIPTION = "simsiam-tfx, compiled for {target}"


@dataclasses.dataclass
class KubeflowConfig:
    """What only the Kubeflow/Vertex deployment needs; the pipeline itself is PipelineConfig."""
    image: str = ""
    gpu_image: str = ""  # kubeflow/Dockerfile, LOCK=requirements-gpu.lock; the Trainers' image when trainer_gpus > 0
    pipeline_root: str = ""  # gs://bucket/path (Vertex) or any object-store URI the KFP cluster reads
    # Default data location (a runtime parameter, so runs may override it): the span root where
    # PlanData writes span-<N>/ (default <pipeline_root>/data), or a folder holding a pinned sources.json.
    input_base: str = ""
    trainer_cpu: float | None = None  # vCPUs per Trainer
    trainer_memory: float | None = None  # GB per Trainer
    trainer_gpus: int = 0
    gpu_type: str | None = None  # None: the target's default (VERTEX_DEFAULT_GPU / KFP_GPU_RESOURCE)
    beam_cpu: float = 1.0  # vCPUs per Beam step (ExampleGen, StatisticsGen, Transform, Evaluator)
    beam_memory: float = 4.0  # GB per Beam step
    input_disk: float | None = None  # KFP: GB of volume per step with inputs, for the launcher's copy of them
    allow_mutable_image: bool = False  # accept IMAGE:TAG (stale cache hits when the tag moves)
    # Beam flags for StatisticsGen/Transform/Evaluator...; None keeps PipelineConfig's (in-process).
    beam_pipeline_args: list[str] | None = None

    def validate(self) -> KubeflowConfig:
        if not self.image:
            raise ConfigError("--image is required (the container image with this project installed)")
        if not self.pipeline_root:
            raise ConfigError("--pipeline-root is required (e.g. gs://bucket/simsiam)")
        if not is_remote(self.pipeline_root):
            raise ConfigError(f"--pipeline-root must be a URI the cluster can reach (gs://...), "
                              f"got {self.pipeline_root!r}")
        if not self.allow_mutable_image:
            for flag, image in (("--image", self.image), ("--gpu-image", self.gpu_image)):
                if image and not _DIGEST.search(image):
                    raise ConfigError(
                        f"{flag} {image} is a tag, which can move: KFP and Vertex cache each step by the image "
                        f"string, so new code pushed under the same tag would reuse old results. Name it by "
                        f"digest (IMAGE@sha256:..., printed by `docker push` or `docker inspect --format "
                        f"'{{{{index .RepoDigests 0}}}}' IMAGE`), or pass --allow-mutable-image")
        if self.trainer_gpus > 0 and not self.gpu_image:
            raise ConfigError("--trainer-gpus needs --gpu-image (kubeflow/Dockerfile built with --build-arg "
                              "LOCK=requirements-gpu.lock): the CPU image "
                              "has no CUDA libraries and TensorFlow would not see the GPUs")
        if self.trainer_gpus > 0 and self.gpu_image == self.image:
            raise ConfigError("--gpu-image is the same as --image: the Trainers need the GPU image (--build-arg "
                              "LOCK=requirements-gpu.lock)")
        if self.trainer_gpus < 0 or (self.trainer_cpu or 0) < 0 or (self.trainer_memory or 0) < 0:
            raise ConfigError("trainer resources must be non-negative")
        if self.beam_cpu <= 0 or self.beam_memory <= 0 or (self.input_disk is not None and self.input_disk <= 0):
            raise ConfigError("--beam-cpu, --beam-memory and --input-disk must be positive")
        return self

    def accelerator(self, target: str) -> str:
        """The accelerator type as `target` reads it."""
        name = self.gpu_type or (KFP_GPU_RESOURCE if target == "kfp" else VERTEX_DEFAULT_GPU)
        if target == "kfp":
            # A Vertex name cannot be a Kubernetes resource; the GPU model is the node pool's.
            return KFP_GPU_RESOURCE if name.startswith("NVIDIA_") else name
        if "/" in name:
            raise ConfigError(f"--gpu-type {name!r} is a Kubernetes resource name; Vertex AI needs an accelerator "
                              f"name such as {VERTEX_DEFAULT_GPU} or NVIDIA_L4")
        return name

    def data_location(self) -> str:
        return self.input_base or self.pipeline_root.rstrip("/") + "/data"


@functools.lru_cache(maxsize=None)
def _opens(scheme: str) -> bool:
    """Whether TensorFlow and Beam (the image's: the same locked versions) have a file system for
    `scheme`."""
    import tensorflow as tf
    from apache_beam.io.filesystems import FileSystems
    if scheme not in tf.io.gfile.get_registered_schemes():
        return False
    try:
        FileSystems.get_filesystem(f"{scheme}://bucket/path")
    except ValueError:
        return False
    return True


def check_pipeline_root(root: str, target: str, flag: str = "--pipeline-root") -> str:
    """A root every step can write: TensorFlow and Beam open its scheme, and (KFP) the launcher can
    copy artifacts to and from it; Vertex writes to Cloud Storage only. Returns the root."""
    scheme = root.split("://", 1)[0] if is_remote(root) else ""
    usable = [s for s in KFP_LAUNCHER_SCHEMES if _opens(s)] if target == "kfp" else ["gs"]
    if scheme not in usable:
        where = "Vertex AI Pipelines writes only to Cloud Storage" if target == "vertex" else (
            f"TensorFlow and Beam, which the steps write with, cannot open {scheme + '://' if scheme else 'local'} "
            f"paths" if not scheme or not _opens(scheme) else f"the KFP launcher cannot copy {scheme}:// artifacts")
        raise ConfigError(f"{flag} {root}: {where}; use {' or '.join(s + '://bucket/path' for s in usable)}")
    return root


def run_parameters(config: PipelineConfig, kconfig: KubeflowConfig) -> dict[str, str]:
    """Values of every runtime parameter for this configuration (the compiled defaults)."""
    from simsiam_tfx.components.trainer_config import custom_config_json
    from simsiam_tfx.pipeline.pipeline import eval_config_json
    return {contract.INPUT_BASE_PARAM: kconfig.data_location(),
            contract.TRAINER_CONFIG_PARAM: custom_config_json(config, kconfig.trainer_gpus),
            contract.EVAL_CONFIG_PARAM: eval_config_json(config.eval),
            contract.DATA_CONFIG_PARAM: json.dumps(dataclasses.asdict(config.data), sort_keys=True)}


def resource_spec(kconfig: KubeflowConfig, target: str):
    from kfp.pipeline_spec import pipeline_spec_pb2
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if kconfig.trainer_cpu:
        spec.cpu_limit = kconfig.trainer_cpu
    if kconfig.trainer_memory:
        spec.memory_limit = kconfig.trainer_memory
    if kconfig.trainer_gpus:
        spec.accelerator.type = kconfig.accelerator(target)
        spec.accelerator.count = kconfig.trainer_gpus
    return spec


def beam_resources(kconfig: KubeflowConfig, target: str) -> dict[str, float]:
    """A Beam step's container resources as the target reads them: the open-source driver turns
    requests into the pod's requests (driver.go, lines 355-405); Vertex picks a machine by limits."""
    if target == "kfp":
        return {"cpuRequest": kconfig.beam_cpu, "memoryRequest": kconfig.beam_memory}
    return {"cpuLimit": kconfig.beam_cpu, "memoryLimit": kconfig.beam_memory}


def input_volume(kconfig: KubeflowConfig) -> dict[str, Any]:
    """kfp-kubernetes GenericEphemeralVolume (kubernetes_executor_config.proto; driver/k8s.go mounts
    it): a claim of the default storage class, mounted where the launcher copies gs:// inputs."""
    size = f"{kconfig.input_disk:g}G"
    return {"genericEphemeralVolume": [{"volumeName": INPUT_VOLUME, "mountPath": KFP_INPUT_MOUNT,
                                        "accessModes": ["ReadWriteOnce"], "size": size,
                                        "defaultStorageClass": True}]}


def build_pipeline(config: PipelineConfig, kconfig: KubeflowConfig, target: str = "kfp"):
    """create_pipeline() with the runtime parameters and Trainer resources of a cluster run."""
    tfx = import_quietly("tfx.v1")

    from simsiam_tfx.pipeline.pipeline import RuntimeParameters, create_pipeline

    kconfig.validate()
    # Everything (pipeline root, pushed models) lives under the pipeline root; no local MLMD store.
    config = dataclasses.replace(config, output_dir=kconfig.pipeline_root.rstrip("/"))
    from simsiam_tfx.components.beam_dependencies import with_worker_image
    beam_args = config.beam_pipeline_args if kconfig.beam_pipeline_args is None else kconfig.beam_pipeline_args
    config.beam_pipeline_args = with_worker_image(beam_args, kconfig.image)
    defaults = run_parameters(config.validate(), kconfig)
    params = {name: tfx.dsl.experimental.RuntimeParameter(name=name, ptype=str, default=defaults[name])
              for name in TFX_PARAMETERS}
    runtime = RuntimeParameters(input_base=params[contract.INPUT_BASE_PARAM],
                                trainer_config=params[contract.TRAINER_CONFIG_PARAM],
                                eval_config=params[contract.EVAL_CONFIG_PARAM])
    resources = resource_spec(kconfig, target) \
        if (kconfig.trainer_cpu or kconfig.trainer_memory or kconfig.trainer_gpus) else None
    pipeline = create_pipeline(config, "", runtime=runtime, trainer_platform_config=resources,
                               trainer_gpus=kconfig.trainer_gpus)
    return pipeline, defaults


def compile_pipeline(config: PipelineConfig, kconfig: KubeflowConfig, output: str, target: str) -> str:
    """Writes the compiled pipeline to `output`: .yaml (kfp) or .json (vertex). Returns the path."""
    import yaml
    tfx = import_quietly("tfx.v1")
    from tfx.dsl.components.base.base_beam_component import BaseBeamComponent

    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    want = ".yaml" if target == "kfp" else ".json"
    if not output.endswith(want if target == "vertex" else (".yaml", ".yml")):
        raise ConfigError(f"--output for --target {target} must end in {want}, got {output!r}")
    check_pipeline_root(kconfig.validate().pipeline_root, target)
    pipeline, defaults = build_pipeline(config, kconfig, target)
    beam_executors = {executor_label(c.id) for c in pipeline.components if isinstance(c, BaseBeamComponent)}
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=kconfig.image, use_pipeline_spec_2_1=True),  # 2.1: what KFP 2 and Vertex read
        output_dir=tempfile.gettempdir(), output_filename="unused")
    job = runner.run(pipeline, parameter_values={name: defaults[name] for name in TFX_PARAMETERS}, write_out=False)
    spec = job["pipelineSpec"]
    # TFX leaves the root parameters without defaults; KFP would then demand every value on each run.
    declared = spec["root"].setdefault("inputDefinitions", {}).setdefault("parameters", {})
    for name, value in defaults.items():
        declared.setdefault(name, {"parameterType": "STRING"}).update(defaultValue=value, isOptional=True)
    job.setdefault("runtimeConfig", {}).setdefault("parameterValues", {})[contract.DATA_CONFIG_PARAM] = \
        defaults[contract.DATA_CONFIG_PARAM]
    spec["defaultPipelineRoot"] = job["runtimeConfig"]["gcsOutputDirectory"]
    platforms = finish_spec(spec, kconfig, target, beam_executors)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        if target == "kfp":  # kfp.Client reads a second document as the platform spec
            yaml.safe_dump_all([spec] + ([platforms] if platforms else []), f, sort_keys=True)
        else:
            json.dump(job, f, sort_keys=True, indent=1)
    return output


def finish_spec(spec: dict[str, Any], kconfig: KubeflowConfig, target: str,
                beam_executors: set[str] = frozenset()) -> dict[str, Any]:
    """Our entrypoint, the GPU image, accelerator name and Beam steps' resources per target; a KFP
    spec is checked to hold only what the open-source backend runs. Returns the KFP platform spec
    (kubernetes executor configs), empty when there is none."""
    from simsiam_tfx.pipeline import runner_duties
    spec["pipelineInfo"]["description"] = _DESCRIPTION.format(target=target)
    runner_duties.switch_off_cache(spec)
    for name, executor in spec["deploymentSpec"]["executors"].items():
        if target == "kfp" and not set(executor) <= set(KFP_EXECUTOR_KINDS):
            raise ConfigError(f"executor {name} is a {', '.join(executor)}: open-source KFP runs only "
                              f"{' and '.join(KFP_EXECUTOR_KINDS)} executors")
        container = executor.get("container")
        if container is None:
            continue
        container["command"] = list(ENTRYPOINT)
        accelerator = container.get("resources", {}).get("accelerator")
        if name in TRAINER_EXECUTORS and accelerator:
            container["image"] = kconfig.gpu_image
        if name in beam_executors:
            container["resources"] = beam_resources(kconfig, target)
    add_plan_step(spec, kconfig.image)
    if target != "kfp" or kconfig.input_disk is None:
        return {}
    with_inputs = sorted(c["executorLabel"] for c in spec["components"].values()
                         if c.get("inputDefinitions", {}).get("artifacts"))
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
        name: input_volume(kconfig) for name in with_inputs}}}}}


def add_plan_step(spec: dict[str, Any], image: str) -> None:
    """PlanData (kubeflow/plan_step.py) as the first task, never cached; ExampleGen reads the
    folder it outputs. The IR is what the KFP SDK writes for a container component with STRING
    inputs and one STRING output parameter (pipeline_spec.proto: TaskOutputParameterSpec)."""
    dag = spec["root"]["dag"]["tasks"]
    spec["components"][contract.PLAN_DATA] = {
        "executorLabel": PLAN_EXECUTOR,
        "inputDefinitions": {"parameters": {name: {"parameterType": "STRING"}
                                            for name in (contract.INPUT_BASE_PARAM, contract.DATA_CONFIG_PARAM)}},
        "outputDefinitions": {"parameters": {contract.INPUT_BASE_PARAM: {"parameterType": "STRING"}}}}
    spec["deploymentSpec"]["executors"][PLAN_EXECUTOR] = {"container": {
        "image": image, "command": list(PLAN_COMMAND), "args": ["--executor_input", "{{$}}"]}}
    dag[contract.PLAN_DATA] = {
        "taskInfo": {"name": contract.PLAN_DATA}, "componentRef": {"name": contract.PLAN_DATA},
        "cachingOptions": {"enableCache": False},  # it reads the data as it is now
        "inputs": {"parameters": {name: {"componentInputParameter": name}
                                  for name in (contract.INPUT_BASE_PARAM, contract.DATA_CONFIG_PARAM)}}}
    example_gen = dag[contract.EXAMPLE_GEN]
    example_gen["inputs"]["parameters"][contract.INPUT_BASE_PARAM] = {
        "taskOutputParameter": {"producerTask": contract.PLAN_DATA,
                                "outputParameterKey": contract.INPUT_BASE_PARAM}}
    example_gen["dependentTasks"] = sorted(set(example_gen.get("dependentTasks", [])) | {contract.PLAN_DATA})


def spec_target(spec: dict[str, Any]) -> str | None:
    """The target a spec was compiled for (None: not compiled by this version)."""
    description = spec.get("pipelineInfo", {}).get("description", "")
    return next((t for t in TARGETS if description == _DESCRIPTION.format(target=t)), None)


def load_spec(path: str, target: str | None = None) -> dict[str, Any]:
    """Reads a compiled file back: the PipelineSpec dict, from either format; with `target`, a
    file compiled for another target is refused."""
    import yaml
    try:
        with open(path) as f:
            documents = list(yaml.safe_load_all(f))  # JSON is YAML too; a KFP file may add a platform spec
    except OSError as e:
        raise ConfigError(f"cannot read pipeline file {path}: {e.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{path} is not a compiled pipeline (not YAML or JSON)") from None
    data = documents[0] if documents else None
    if not isinstance(data, dict) or not ("pipelineSpec" in data or "root" in data):
        raise ConfigError(f"{path} is not a compiled pipeline (no pipelineSpec/root)")
    spec = data.get("pipelineSpec", data)
    compiled_for = spec_target(spec)
    if target and compiled_for and compiled_for != target:
        raise ConfigError(f"{path} was compiled for --target {compiled_for}, not {target}: "
                          f"recompile with --target {target}")
    return spec
