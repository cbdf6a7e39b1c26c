"""Test harness: runs a compiled pipeline spec the way open-source Kubeflow Pipelines (v2) or Vertex
AI Pipelines runs it, every task as a subprocess of its own container command and arguments.

What a real launcher does and what is emulated here (kubeflow/pipelines at 7b70c7b, 2026-08-21;
tensorflow/tfx 1.21):

- Order: tasks run in dependency order (`dependentTasks` and the producers of their input
  artifacts), as the Argo DAG that backend/src/v2/compiler/argocompiler/dag.go builds.
- Inputs (backend/src/v2/driver/resolve.go, resolveUpstreamArtifacts -> metadata/client.go
  GetOutputArtifactsByExecutionId + OutputArtifact.ToRuntimeArtifact, metadata/converter.go
  toRuntimeArtifact):
    kfp:    name = the MLMD artifact id as decimal text, uri, metadata = the artifact's properties
            and custom properties, type = {instanceSchema: ""} (`Schema: "" // TODO(Bobgy)`).
    vertex: name = the artifact's resource name, the type as the component declares it.
  Parameters: the run's value of a pipeline parameter (or its default), the task's constant, or an
  upstream task's output parameter (`taskOutputParameter`: resolve.go, resolveUpstreamParameters
  reads the producer execution's output parameter of that key).
- Outputs (driver/driver.go, provisionOutputs): each output artifact is named by its output key,
  typed as declared, at uri `<pipeline root>/<task>/<salt>/<key>` (metadata.GenerateOutputURI); the
  ExecutorOutput file is `output_metadata.json` in the task root. Vertex: the same layout with a
  resource name, under the job's gcsOutputDirectory. Each output parameter gets
  `outputs.parameters[<name>].outputFile` (driver.go, provisionOutputs: `/tmp/kfp/outputs/<name>`;
  here `<task root>/outputs/<name>`, since all tasks share one machine).
- The command (component/launcher_v2.go): `{{$}}` in the container args is replaced by the
  ExecutorInput JSON; command + args run; the ExecutorOutput file then says what to record for each
  output artifact (its metadata becomes the artifact's custom properties in MLMD). An artifact the
  file does not mention is recorded as provisioned. Output parameters (launcher_v2.go,
  collectOutputParameters): the ExecutorOutput's `parameterValues` first, else the text of each
  parameter's outputFile (STRING: as is).
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

Not emulated: Kubernetes (pods, resources, accelerators, node pools), object stores (the pipeline
root is a local folder), MLMD itself (an in-memory store persisted as JSON between runs of one
test), the Argo retry policy, Vertex's service-side validation of the spec.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

PLACEHOLDER = "{{$}}"
TARGETS = ("kfp", "vertex")
_VERTEX_PREFIX = "projects/123/locations/europe-west4/metadataStores/default/artifacts/"


class TaskFailed(RuntimeError):
    def __init__(self, task: str, returncode: int, output: str):
        super().__init__(f"{task} exited {returncode}:\n{output[-6000:]}")
        self.task, self.returncode, self.output = task, returncode, output


@dataclasses.dataclass
class RunResult:
    states: dict[str, str]  # task -> "executed" | "cached"
    outputs: dict[str, dict[str, dict[str, Any]]]  # task -> output key -> recorded artifact
    logs: dict[str, str]
    parameters: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # task -> output parameters
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)  # task -> wall time (0 for a cache hit)

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


class Launcher:
    """Runs a compiled spec as `target`'s launcher would; MLMD and the cache persist in `state_dir`
    across `run` calls (one pipeline's history)."""

    def __init__(self, spec: dict[str, Any], target: str, pipeline_root: str, state_dir: str,
                 timeout_s: float = 900, env: dict[str, str] | None = None):
        assert target in TARGETS, target
        self.spec, self.target, self.pipeline_root = spec, target, pipeline_root.rstrip("/")
        self.state_path = os.path.join(state_dir, f"mlmd-{target}.json")
        self.timeout_s = timeout_s
        self.env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
        os.makedirs(state_dir, exist_ok=True)

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
        result = RunResult({}, {}, {})
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
                values[key] = parameters.get(name, declared[name].get("defaultValue"))
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

    def _outputs(self, name, component, run_id) -> tuple[dict[str, Any], dict[str, Any], str]:
        task_root = os.path.join(self.pipeline_root, run_id, name, uuid.uuid4().hex[:6])
        artifacts = {}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            artifact_name = key if self.target == "kfp" else _VERTEX_PREFIX + "pending"
            artifacts[key] = {"artifacts": [{"name": artifact_name, "uri": os.path.join(task_root, key),
                                             "type": definition["artifactType"], "metadata": {}}]}
        parameters = {key: {"outputFile": os.path.join(task_root, "outputs", key)}
                      for key in component.get("outputDefinitions", {}).get("parameters", {})}
        return artifacts, parameters, task_root

    def _run_task(self, name, parameters, enable_cache, run_id, state, result: RunResult) -> None:
        task, component, container = self._parts(name)
        artifacts, output_parameters, task_root = self._outputs(name, component, run_id)
        output_file = os.path.join(task_root, "output_metadata.json")
        outputs: dict[str, Any] = {"artifacts": artifacts, "outputFile": output_file}
        if output_parameters:
            outputs["parameters"] = output_parameters
        executor_input = {"inputs": {"parameterValues": self._parameter_values(task, parameters, result),
                                     "artifacts": self._input_artifacts(task, component, result)},
                          "outputs": outputs}
        hook = container.get("lifecycle", {}).get("preCacheCheck")
        key_parameters = dict(executor_input["inputs"]["parameterValues"])
        if hook and self.target == "vertex":
            self._exec(f"{name} (driver)", hook["command"], hook["args"], executor_input, result)
            with open(output_file) as f:
                key_parameters.update(json.load(f).get("parameterValues", {}))
        key = self._cache_key(executor_input, key_parameters, container)
        caching = enable_cache and task.get("cachingOptions", {}).get("enableCache", False)
        if caching and key in state["cache"]:
            result.states[name] = "cached"
            result.outputs[name] = state["cache"][key]["artifacts"]
            result.parameters[name] = state["cache"][key]["parameters"]
            result.seconds[name] = 0.0
            return
        start = time.perf_counter()
        self._exec(name, container["command"], container["args"], executor_input, result)
        result.seconds[name] = round(time.perf_counter() - start, 1)
        recorded = self._record(artifacts, output_file, state)
        result.states[name] = "executed"
        result.outputs[name] = recorded
        result.parameters[name] = self._output_parameters(output_parameters, output_file)
        if caching:
            state["cache"][key] = {"artifacts": recorded, "parameters": result.parameters[name]}

    def _cache_key(self, executor_input, parameter_values, container) -> str:
        inputs = executor_input["inputs"]["artifacts"]
        outputs = executor_input["outputs"]["artifacts"]
        key = {"inputArtifactNames": {k: [a["name"] for a in v["artifacts"]] for k, v in inputs.items()},
               "inputParameterValues": parameter_values,
               "outputArtifactsSpec": {k: {"name": v["artifacts"][0]["name"], "type": v["artifacts"][0]["type"]}
                                       for k, v in outputs.items()},
               "containerSpec": {"image": container["image"], "cmdArgs": container["command"] + container["args"]}}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def _exec(self, label, command, args, executor_input, result: RunResult) -> None:
        assert command[:2] == ["python", "-m"], command
        filled = [json.dumps(executor_input) if arg == PLACEHOLDER else arg for arg in args]
        assert not [a for a in filled if "{{$" in a], filled  # `{{$}}` is the whole contract
        done = subprocess.run([sys.executable, *command[1:], *filled], env=self.env, capture_output=True,
                              text=True, timeout=self.timeout_s)
        result.logs[label] = done.stdout + done.stderr
        if done.returncode != 0:
            raise TaskFailed(label, done.returncode, done.stdout[-2000:] + done.stderr)

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
        """What the launcher stores in MLMD: the ExecutorOutput's artifacts, else the provisioned ones."""
        written = {}
        if os.path.exists(output_file):
            with open(output_file) as f:
                written = json.load(f).get("artifacts", {})
        recorded = {}
        for key, artifact_list in provisioned.items():
            artifact = (written.get(key, {}).get("artifacts") or artifact_list["artifacts"])[0]
            recorded[key] = {"id": state["next_id"], "uri": artifact["uri"], "metadata": artifact.get("metadata", {})}
            state["next_id"] += 1
        return recorded
