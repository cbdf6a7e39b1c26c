"""Test harness: runs a compiled pipeline spec the way open-source Kubeflow Pipelines (v2) or Vertex
AI Pipelines runs it, every task as a subprocess of its own container command and arguments.

By default it models a **stock** install: what the manifests and the backend switch on when nobody
configures anything. Sources: kubeflow/pipelines at 7b70c7b (2026-08-21); tensorflow/tfx 1.21.

- Pipeline root (kfp): the run's `runtimeConfig.gcsOutputDirectory` (what `kfp.Client` sends as
  `pipeline_root`), else the namespace's `kfp-launcher` ConfigMap key `defaultPipelineRoot`, else
  `minio://mlpipeline/v2/artifacts` (backend/src/v2/driver/root_dag.go RootDAG, lines 96-113;
  backend/src/v2/config/env.go lines 37-39 and DefaultPipelineRoot, 86-92). The spec's own
  `defaultPipelineRoot` is read by nothing in the backend. Vertex: the job's gcsOutputDirectory.
  Task roots are `<root>/<pipeline name>/<run id>/<task>/<salt>` (metadata/client.go GetPipeline
  line 420, GenerateOutputURI; driver/driver.go provisionOutputs).
- Object stores: buckets the test maps onto local folders (a bucket mount: every string in the spec
  and the resolved root are rewritten); any other URI stays as it is, so a scheme TensorFlow cannot
  open (minio://, s3://) fails the step exactly where TensorFlow fails. An output URI the launcher
  has no local path for (LocalPathForURI: gs://, minio://, s3://, oci:// only) fails the task
  before its command, as component/launcher_v2.go prepareOutputFolders does.
- executor-logs (kfp): with publishing on, which it is by default (compiler/argocompiler/
  container.go publishLogsArg: "true" unless PUBLISH_LOGS is set; manifests/kustomize/base/pipeline/
  ml-pipeline-apiserver-deployment.yaml: PUBLISH_LOGS "true"), the driver adds an output artifact
  `executor-logs` typed `{schemaTitle: system.Artifact}` to every container task's ExecutorInput
  (driver/driver.go provisionOutputs, lines 746-759); the launcher writes the command's stdout and
  stderr to its local path and records it (launcher_v2.go getLogWriter, uploadOutputArtifacts).
  `publish_logs=False` models PUBLISH_LOGS=false.
- Order: tasks run in dependency order (`dependentTasks` and the producers of their input
  artifacts), as the Argo DAG that backend/src/v2/compiler/argocompiler/dag.go builds.
- Inputs (backend/src/v2/driver/resolve.go, resolveUpstreamArtifacts -> metadata/client.go
  GetOutputArtifactsByExecutionId + OutputArtifact.ToRuntimeArtifact, metadata/converter.go
  toRuntimeArtifact):
    kfp:    name = the MLMD artifact id as decimal text, uri, metadata = the artifact's properties
            and custom properties read back from MLMD (below), type = {instanceSchema: ""}
            (`Schema: "" // TODO(Bobgy)`).
    vertex: name = the artifact's resource name, the type as the component declares it.
  Before the command the kfp launcher copies every input artifact to the pod's local disk
  (launcher_v2.go downloadArtifacts): `RunResult.copy_in_bytes` reports what each task would move.
  Parameters: the run's value of a pipeline parameter (or its default), the task's constant, or an
  upstream task's output parameter (`taskOutputParameter`: resolve.go, resolveUpstreamParameters).
- Output metadata through MLMD (kfp; metadata/converter.go StructValueToMLMDValue, lines 138-171,
  and toRuntimeArtifact, lines 181-221; metadata/client.go RecordArtifact, lines 1214-1250): a
  string stays a string, a number becomes a double, a bool an int (1/0), a list is wrapped as
  {"list": [...]}, a struct as {"struct": {...}}, and a null fails the task ("unknown/unsupported
  value type"); `display_name` (the output key) and `store_session_info` are added. Downstream
  tasks read ints and doubles back as numbers and structs as stored (still wrapped).
- Outputs (driver/driver.go, provisionOutputs): each output artifact is named by its output key,
  typed as declared, at uri `<task root>/<key>`; the ExecutorOutput file is `output_metadata.json`
  at the launcher's local path for the task root (LocalPathForURI: /gcs/..., /minio/...), on the
  pod's disk, not in the bucket (here: a per-task folder standing for the pod). Vertex: the same
  layout with a resource name, under the job's gcsOutputDirectory. Each output parameter gets
  `outputs.parameters[<name>].outputFile` (driver.go: `/tmp/kfp/outputs/<name>`; here in the pod
  folder).
- The command (component/launcher_v2.go): `{{$}}` in the container args is replaced by the
  ExecutorInput JSON; command + args run; the ExecutorOutput file then says what to record for each
  output artifact. An artifact the file does not mention is recorded as provisioned. Output
  parameters (launcher_v2.go, collectOutputParameters): the ExecutorOutput's `parameterValues`
  first, else the text of each parameter's outputFile (STRING: as is).
- Driver hook: Vertex runs a container's `lifecycle.preCacheCheck` (TFX's ExampleGen driver,
  tfx/orchestration/kubeflow/v2/file_based_example_gen/driver.py) before the cache lookup; it
  writes span/version/input fingerprint into the ExecutorOutput file, which the executor then reads
  (tfx .../container/kubeflow_v2_run_executor.py: "It has a driver that outputs the updated
  exec_properties in this file"). Open-source KFP has no such hook: nothing in its backend reads
  `lifecycle`.
- Cache (backend/src/v2/cacheutils/cache.go, GenerateCacheKey + GenerateFingerPrint): sha256 of the
  input artifact names, input parameter values, output artifact specs without their uris, image and
  command/args; a hit reuses the cached execution's output artifacts and parameters (driver/cache.go
  reuseCachedOutputs) and runs nothing. A task whose `cachingOptions.enableCache` is not true is
  never looked up nor stored. Vertex: the same key, with the driver hook's output
  parameters included (how Vertex makes ExampleGen's input fingerprint part of the key; its service
  is closed source, so this is the documented behaviour, not its code).

Processes: every task runs its container's command (`python -m <module> <args>`) as `__main__` in a
process of its own, with its own argv, environment, output and exit status. The process is forked
from one that has already imported what every step imports (the standard library's fork server,
`multiprocessing` "forkserver" with a preload), which saves each task TensorFlow's import, the
longest part of a tiny step; what the steps do at import time of their own modules still runs in
each task, and `fresh_processes=True` starts a new interpreter per task instead.

Not emulated: Kubernetes (pods, resources, accelerators, node pools, volumes), the object stores'
own protocols (a mapped bucket is a local folder; the input copy-in is measured, not made), MLMD
itself (an in-memory store persisted as JSON between runs of one test), the Argo retry policy,
Vertex's service-side validation of the spec and Vertex ML Metadata's value conversion (its
service is closed source: metadata passes as sent).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import time
import uuid
from typing import Any

PLACEHOLDER = "{{$}}"
TARGETS = ("kfp", "vertex")
_VERTEX_PREFIX = "projects/123/locations/europe-west4/metadataStores/default/artifacts/"
KFP_DEFAULT_ROOT = "minio://mlpipeline/v2/artifacts"  # config/env.go defaultPipelineRoot
EXECUTOR_LOGS = "executor-logs"  # driver.go provisionOutputs
LOGS_TYPE = {"schemaTitle": "system.Artifact"}
# component/launcher_v2.go LocalPathForURI: the schemes the launcher can copy to and from the pod.
_LAUNCHER_LOCAL = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/", "oci://": "/oci/"}


# What every step imports before it does anything; the fork server imports it once.
_PRELOAD = ["tensorflow", "apache_beam", "tensorflow_transform", "tensorflow_data_validation",
            "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


def _run_module(module: str, argv: list[str], env: dict[str, str], log_path: str) -> None:
    """In the task's own (forked) process: `python -m module *argv`, its output to `log_path`."""
    os.environ.clear()
    os.environ.update(env)
    with open(log_path, "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


@functools.cache
def _forkserver():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


class TaskFailed(RuntimeError):
    def __init__(self, task: str, returncode: int, output: str):
        super().__init__(f"{task} exited {returncode}:\n{output[-6000:]}")
        self.task, self.returncode, self.output = task, returncode, output


@dataclasses.dataclass
class RunResult:
    states: dict[str, str]  # task -> "executed" | "cached"
    outputs: dict[str, dict[str, dict[str, Any]]]  # task -> output key -> artifact as downstream reads it
    logs: dict[str, str]
    parameters: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # task -> output parameters
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # task -> wall time (0 for a cache hit)
    copy_in_bytes: dict[str, int] = dataclasses.field(default_factory=dict)  # task -> bytes downloaded (kfp)
    # task -> the parameterValues its driver hook wrote (vertex); task -> its ExecutorOutput file as written
    hook_parameters: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    executor_outputs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    pipeline_root: str = ""  # as resolved

    def artifact(self, task: str, key: str) -> dict[str, Any]:
        return self.outputs[task][key]


def task_order(spec: dict[str, Any]) -> list[str]:
    tasks = spec["root"]["dag"]["tasks"]

    def upstream(name: str) -> set[str]:
        task = tasks[name]
        artifacts = task.get("inputs", {}).get("artifacts", {}).values()
        producers = {a["taskOutputArtifact"]["producerTask"] for a in artifacts if "taskOutputArtifact" in a}
        parameters = task.get("inputs", {}).get("parameters", {}).values()
        producers |= {p["taskOutputParameter"]["producerTask"] for p in parameters if "taskOutputParameter" in p}
        return set(task.get("dependentTasks", [])) | producers

    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in order and upstream(n) <= set(order))
        if not ready:
            raise ValueError(f"cycle among {sorted(set(tasks) - set(order))}")
        order += ready
    return order


def resolve_pipeline_root(target: str, run_root: str | None, configmap_root: str | None = None) -> str:
    """The root a run's tasks write under, as the root-DAG driver picks it (see the docstring)."""
    if target == "vertex":
        assert run_root, "a Vertex PipelineJob carries runtimeConfig.gcsOutputDirectory"
        return run_root
    return run_root or configmap_root or KFP_DEFAULT_ROOT


class UnsupportedValue(ValueError):
    pass


def to_mlmd_value(value: Any) -> tuple[str, Any]:
    """converter.go StructValueToMLMDValue: a JSON value as MLMD stores it, (kind, value)."""
    if isinstance(value, bool):  # before int: a bool is an int in Python
        return "int", int(value)
    if isinstance(value, str):
        return "string", value
    if isinstance(value, (int, float)):
        return "double", float(value)
    if isinstance(value, list):
        return "struct", {"list": value}
    if isinstance(value, dict):
        return "struct", {"struct": value}
    raise UnsupportedValue(f"unknown/unsupported value type {type(value).__name__}")  # null: "TODO: support null"


def from_mlmd_value(kind: str, value: Any) -> Any:
    """converter.go toRuntimeArtifact: ints and doubles come back as numbers, structs as stored."""
    return float(value) if kind in ("int", "double") else value


def mlmd_custom_properties(metadata: dict[str, Any], output_key: str, session_info: str) -> dict[str, list]:
    """What RecordArtifact stores for an output artifact's metadata (raises UnsupportedValue)."""
    properties = {key: list(to_mlmd_value(value)) for key, value in metadata.items() if key != "_kfp_workspace"}
    properties.setdefault("display_name", ["string", output_key])
    properties.setdefault("store_session_info", ["string", session_info])
    return properties


def _du(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(folder, name))
               for folder, _, names in os.walk(path) for name in names)


class Launcher:
    """Runs a compiled spec as `target`'s launcher would; MLMD and the cache persist in `state_dir`
    across `run` calls (one pipeline's history).

    `buckets` maps object-store prefixes (gs://bucket) onto local folders; `run_root` is the
    pipeline root the run was created with (kfp: what the client sent, None if nothing; vertex:
    the job's gcsOutputDirectory); `configmap_root` the namespace's kfp-launcher default, if any."""

    def __init__(self, spec: dict[str, Any], target: str, state_dir: str, *, run_root: str | None = None,
                 configmap_root: str | None = None, buckets: dict[str, str] | None = None,
                 publish_logs: bool = True, timeout_s: float = 900, env: dict[str, str] | None = None,
                 fresh_processes: bool = False):
        assert target in TARGETS, target
        self.buckets = dict(buckets or {})
        self.spec = json.loads(self._mount(json.dumps(spec)))
        self.target = target
        self.remote_root = resolve_pipeline_root(target, run_root, configmap_root).rstrip("/")
        self.publish_logs = publish_logs and target == "kfp"
        self.state_dir = state_dir
        self.state_path = os.path.join(state_dir, f"mlmd-{target}.json")
        self.timeout_s = timeout_s
        self.fresh_processes = fresh_processes
        self.env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
        os.makedirs(state_dir, exist_ok=True)

    def _mount(self, text: str) -> str:
        for prefix, folder in self.buckets.items():
            text = text.replace(prefix.rstrip("/"), folder.rstrip("/"))
        return text

    def _pod_path(self, remote_uri: str, pod: str) -> str:
        """LocalPathForURI, inside the folder that stands for the task's pod."""
        for scheme, local in _LAUNCHER_LOCAL.items():
            if remote_uri.startswith(scheme):
                return os.path.join(pod, local.strip("/"), remote_uri[len(scheme):])
        raise ValueError(f"failed to generate local path for URI {remote_uri}: unsupported storage scheme")

    # ---- MLMD stand-in -------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        if not os.path.exists(self.state_path):
            return {"next_id": 1, "cache": {}}
        with open(self.state_path) as f:
            return json.load(f)

    def _save(self, state: dict[str, Any]) -> None:
        with open(self.state_path, "w") as f:
            json.dump(state, f, indent=1)

    # ---- the run ---------------------------------------------------------------------------
    def run(self, parameters: dict[str, Any] | None = None, enable_cache: bool = True) -> RunResult:
        state = self._load()
        run_id = uuid.uuid4().hex[:8]
        result = RunResult({}, {}, {}, pipeline_root=self.remote_root)
        for name in task_order(self.spec):
            self._run_task(name, parameters or {}, enable_cache, run_id, state, result)
        self._save(state)
        return result

    def _parts(self, name: str):
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self.spec["components"][task["componentRef"]["name"]]
        executor = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]
        assert set(executor) == {"container"}, f"{name}: {sorted(executor)} executor"  # no resolver/importer here
        return task, component, executor["container"]

    def _parameter_values(self, task, parameters, result: RunResult) -> dict[str, Any]:
        declared = self.spec["root"].get("inputDefinitions", {}).get("parameters", {})
        values = {}
        for key, source in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in source:
                name = source["componentInputParameter"]
                values[key] = parameters[name] if name in parameters else declared[name].get("defaultValue")
                if isinstance(values[key], str):
                    values[key] = self._mount(values[key])
            elif "taskOutputParameter" in source:
                ref = source["taskOutputParameter"]
                values[key] = result.parameters[ref["producerTask"]][ref["outputParameterKey"]]
            else:
                values[key] = source["runtimeValue"]["constant"]
        return values

    def _input_artifacts(self, task, component, result: RunResult) -> dict[str, Any]:
        declared = component.get("inputDefinitions", {}).get("artifacts", {})
        artifacts = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            ref = source["taskOutputArtifact"]
            recorded = result.outputs[ref["producerTask"]][ref["outputArtifactKey"]]
            if self.target == "kfp":
                name, artifact_type = str(recorded["id"]), {"instanceSchema": ""}
            else:
                name, artifact_type = _VERTEX_PREFIX + str(recorded["id"]), declared[key]["artifactType"]
            artifacts[key] = {"artifacts": [{"name": name, "uri": recorded["uri"], "type": artifact_type,
                                             "metadata": recorded["metadata"]}]}
        return artifacts

    def _outputs(self, name, component, run_id, pod) -> tuple[dict[str, Any], dict[str, Any], str]:
        pipeline_name = self.spec["pipelineInfo"]["name"]
        remote_task_root = f"{self.remote_root}/{pipeline_name}/{run_id}/{name}/{uuid.uuid4().hex[:6]}"
        declared = dict(component.get("outputDefinitions", {}).get("artifacts", {}))
        if self.publish_logs:
            declared[EXECUTOR_LOGS] = {"artifactType": LOGS_TYPE}
        artifacts = {}
        for key, definition in declared.items():
            remote = f"{remote_task_root}/{key}"
            try:  # prepareOutputFolders: every output needs a local path on the pod
                self._pod_path(remote, pod)
            except ValueError as e:
                raise TaskFailed(name, 1, f"failed to generate local storage path for output artifact "
                                          f"{key!r}: {e}") from None
            artifact_name = key if self.target == "kfp" else _VERTEX_PREFIX + "pending"
            artifacts[key] = {"artifacts": [{"name": artifact_name, "uri": self._mount(remote),
                                             "type": definition["artifactType"], "metadata": {}}]}
        parameters = {key: {"outputFile": os.path.join(pod, "tmp", "kfp", "outputs", key)}
                      for key in component.get("outputDefinitions", {}).get("parameters", {})}
        if self.target == "kfp":
            output_file = os.path.join(self._pod_path(remote_task_root, pod), "output_metadata.json")
        else:
            output_file = os.path.join(self._mount(remote_task_root), "executor_output.json")
        return artifacts, parameters, output_file

    def invocation(self, name: str, parameters: dict[str, Any], result: RunResult, run_id: str = "run") \
            -> tuple[dict[str, Any], dict[str, Any]]:
        """(the ExecutorInput the launcher builds for task `name`, its container), with upstream
        outputs and parameters taken from `result`; nothing is run."""
        task, component, container = self._parts(name)
        pod = os.path.join(self.state_dir, "pods", run_id, name)
        artifacts, output_parameters, output_file = self._outputs(name, component, run_id, pod)
        outputs: dict[str, Any] = {"artifacts": artifacts, "outputFile": output_file}
        if output_parameters:
            outputs["parameters"] = output_parameters
        executor_input = {"inputs": {"parameterValues": self._parameter_values(task, parameters, result),
                                     "artifacts": self._input_artifacts(task, component, result)},
                          "outputs": outputs}
        return executor_input, container

    def _run_task(self, name, parameters, enable_cache, run_id, state, result: RunResult) -> None:
        task, _, container = self._parts(name)
        pod = os.path.join(self.state_dir, "pods", run_id, name)
        executor_input, _ = self.invocation(name, parameters, result, run_id)
        outputs = executor_input["outputs"]
        artifacts, output_file = outputs["artifacts"], outputs["outputFile"]
        output_parameters = outputs.get("parameters", {})
        hook = container.get("lifecycle", {}).get("preCacheCheck")
        key_parameters = dict(executor_input["inputs"]["parameterValues"])
        if hook and self.target == "vertex":
            self._exec(f"{name} (driver)", hook["command"], hook["args"], executor_input, result)
            with open(output_file) as f:
                result.hook_parameters[name] = json.load(f).get("parameterValues", {})
            key_parameters.update(result.hook_parameters[name])
        key = self._cache_key(executor_input, key_parameters, container)
        caching = enable_cache and task.get("cachingOptions", {}).get("enableCache", False)
        if caching and key in state["cache"]:
            result.states[name] = "cached"
            result.outputs[name] = state["cache"][key]["artifacts"]
            result.parameters[name] = state["cache"][key]["parameters"]
            result.seconds[name] = 0.0
            return
        if self.target == "kfp":  # downloadArtifacts: every input, whole, before the command
            result.copy_in_bytes[name] = sum(_du(a["uri"]) for artifact_list in executor_input["inputs"]["artifacts"]
                                             .values() for a in artifact_list["artifacts"] if os.path.exists(a["uri"]))
        os.makedirs(os.path.dirname(output_file), exist_ok=True)
        logs = artifacts.get(EXECUTOR_LOGS)
        log_path = self._pod_path(self._remote(logs["artifacts"][0]["uri"]), pod) if logs else None
        start = time.perf_counter()
        try:
            self._exec(name, container["command"], container["args"], executor_input, result, log_path)
        finally:
            result.seconds[name] = round(time.perf_counter() - start, 1)
            if log_path:  # uploadOutputArtifacts publishes the log, also when the command failed
                self._upload(log_path, logs["artifacts"][0]["uri"])
        if os.path.exists(output_file):
            with open(output_file) as f:
                result.executor_outputs[name] = json.load(f)
        try:
            recorded = self._record(artifacts, output_file, state)
        except UnsupportedValue as e:
            raise TaskFailed(name, 1, f"unable to produce MLMD artifact: {e}") from None
        result.states[name] = "executed"
        result.outputs[name] = recorded
        result.parameters[name] = self._output_parameters(output_parameters, output_file)
        if caching:
            state["cache"][key] = {"artifacts": recorded, "parameters": result.parameters[name]}

    def _remote(self, uri: str) -> str:
        for prefix, folder in self.buckets.items():
            if uri.startswith(folder.rstrip("/")):
                return prefix.rstrip("/") + uri[len(folder.rstrip("/")):]
        return uri

    @staticmethod
    def _upload(local_path: str, uri: str) -> None:
        """UploadBlob to a mapped bucket; another store's upload is not emulated."""
        if "://" in uri or not os.path.exists(local_path):
            return
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        with open(local_path, "rb") as src, open(uri, "wb") as dst:
            dst.write(src.read())

    def _cache_key(self, executor_input, parameter_values, container) -> str:
        inputs = executor_input["inputs"]["artifacts"]
        outputs = executor_input["outputs"]["artifacts"]
        key = {"inputArtifactNames": {k: [a["name"] for a in v["artifacts"]] for k, v in inputs.items()},
               "inputParameterValues": parameter_values,
               "outputArtifactsSpec": {k: {"name": v["artifacts"][0]["name"], "type": v["artifacts"][0]["type"]}
                                       for k, v in outputs.items()},
               "containerSpec": {"image": container["image"], "cmdArgs": container["command"] + container["args"]}}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def _exec(self, label, command, args, executor_input, result: RunResult, log_path: str | None = None) -> None:
        assert command[:2] == ["python", "-m"], command
        filled = [json.dumps(executor_input) if arg == PLACEHOLDER else arg for arg in args]
        assert not [a for a in filled if "{{$" in a], filled  # `{{$}}` is the whole contract
        returncode, output = (self._subprocess if self.fresh_processes else self._fork)(command[2], filled)
        result.logs[label] = output
        if log_path:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            with open(log_path, "w") as f:
                f.write(output)
        if returncode != 0:
            raise TaskFailed(label, returncode, output)

    def _subprocess(self, module: str, argv: list[str]) -> tuple[int, str]:
        done = subprocess.run([sys.executable, "-m", module, *argv], env=self.env, capture_output=True, text=True,
                              timeout=self.timeout_s)
        return done.returncode, done.stdout + done.stderr

    def _fork(self, module: str, argv: list[str]) -> tuple[int, str]:
        output_path = os.path.join(self.state_dir, f"task-{uuid.uuid4().hex[:8]}.log")
        process = _forkserver().Process(target=_run_module, args=(module, argv, self.env, output_path))
        process.start()
        process.join(self.timeout_s)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired([module, *argv], self.timeout_s)
        with open(output_path, errors="replace") as f:
            output = f.read()
        os.remove(output_path)
        return process.exitcode, output

    @staticmethod
    def _output_parameters(provisioned, output_file) -> dict[str, Any]:
        """launcher_v2.go collectOutputParameters: the ExecutorOutput's value, else the outputFile's text."""
        written = {}
        if os.path.exists(output_file):
            with open(output_file) as f:
                written = json.load(f).get("parameterValues", {})
        values = {}
        for key, parameter in provisioned.items():
            if key in written:
                values[key] = written[key]
            else:
                with open(parameter["outputFile"]) as f:  # a missing file fails the task, as there
                    values[key] = f.read()
        return values

    def _record(self, provisioned, output_file, state) -> dict[str, dict[str, Any]]:
        """What the launcher stores in MLMD (the ExecutorOutput's artifacts, else the provisioned
        ones) and what a downstream task then reads back."""
        written = {}
        if os.path.exists(output_file):
            with open(output_file) as f:
                written = json.load(f).get("artifacts", {})
        session_info = json.dumps({"Provider": self.remote_root.split("://")[0], "Params": {}})
        recorded = {}
        for key, artifact_list in provisioned.items():
            provisioned_artifact = artifact_list["artifacts"][0]
            artifact = provisioned_artifact if key == EXECUTOR_LOGS else \
                (written.get(key, {}).get("artifacts") or artifact_list["artifacts"])[0]
            metadata = artifact.get("metadata", {})
            if self.target == "kfp":
                stored = mlmd_custom_properties(metadata, key, session_info)
                metadata = {k: from_mlmd_value(kind, value) for k, (kind, value) in stored.items()}
            recorded[key] = {"id": state["next_id"], "uri": artifact.get("uri") or provisioned_artifact["uri"],
                             "metadata": metadata}
            state["next_id"] += 1
        return recorded
