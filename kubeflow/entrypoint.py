"""The command of every step of the compiled pipeline: TFX's Kubeflow V2 executor entrypoint,
after restoring what the open-source KFP launcher leaves out.

Open-source Kubeflow Pipelines (v2 driver) hands a step its upstream artifacts as read back from
MLMD with an *empty* type schema (kubeflow/pipelines backend/src/v2/metadata/client.go,
GetOutputArtifactsByExecutionId: `Schema: "" // TODO`, then OutputArtifact.ToRuntimeArtifact sets
`type.instanceSchema` to that empty string). TFX 1.21's entrypoint recovers each input's Python
class from that schema (tfx/orchestration/kubeflow/v2/container/kubeflow_v2_entrypoint_utils.py,
_retrieve_class_path: `yaml.safe_load(type_schema.instance_schema).get('title', ...)`), and
`yaml.safe_load("")` is None: every step with an input artifact fails with AttributeError
(tests/kubeflow/test_launchers.py runs it unpatched to show this). Vertex AI sends the types.

So before delegating, each input artifact without a usable type gets the type its component
declares: TFX's compiler already passes the component's inputDefinitions to every step
(`--json_serialized_inputs_spec_args`, read by TFX for parameters only). With typed inputs
(Vertex, or a fixed KFP) this is a no-op.

Since backend 2.5.0 the open-source driver also adds an output artifact of its own to every task,
`executor-logs` typed `system.Artifact`, on by default (backend/src/v2/driver/driver.go
provisionOutputs; compiler/argocompiler/container.go publishLogsArg). TFX parses every output
artifact and imports a class for its type title (kubeflow_v2_entrypoint_utils._parse_raw_artifact),
and `system.Artifact` is no class: every step would fail before its executor ran. So the outputs
TFX cannot type are left out of what TFX sees; the launcher itself writes and publishes the log
(launcher_v2.go getLogWriter, uploadOutputArtifacts), so nothing of it is lost. Beam in the step's own process (the
default) stages nothing for workers it does not have (pipeline/runner_duties.py).

A user mistake found at run time (simsiam_tfx.config.ConfigError: GPUs requested but none seen,
a data plan that does not match the compiled settings) ends the step with one line and exit 2.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import yaml

INVOCATION_FLAG = "--json_serialized_invocation_args"
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"


def _has_type(artifact_type: dict[str, Any]) -> bool:
    if artifact_type.get("schemaTitle"):
        return True
    schema = artifact_type.get("instanceSchema")
    if not schema:
        return False
    loaded = yaml.safe_load(schema)
    return isinstance(loaded, dict) and bool(loaded.get("title"))


def restore_input_types(executor_input: dict[str, Any], declared: dict[str, Any]) -> list[str]:
    """Fills in the declared type of every input artifact that arrived without one; returns
    the input keys it filled."""
    restored = []
    for key, artifact_list in executor_input.get("inputs", {}).get("artifacts", {}).items():
        for artifact in artifact_list.get("artifacts", []):
            if not _has_type(artifact.get("type") or {}) and key in declared:
                artifact["type"] = declared[key]
                restored.append(key)
    return restored


def _tfx_can_type(artifact_type: dict[str, Any]) -> bool:
    """Whether TFX's entrypoint can import a class for this artifact type (its own rule:
    TITLE_TO_CLASS_PATH for first-party titles, else the title as an import path)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils
    from tfx.utils import import_utils
    try:
        schema = json_format.ParseDict(artifact_type, pipeline_spec_pb2.ArtifactTypeSchema())
        import_utils.import_class_by_path(utils._retrieve_class_path(schema))  # pylint: disable=protected-access
    except Exception:  # noqa: BLE001 - any failure here is the ImportError TFX would raise later
        return False
    return True


def drop_untyped_outputs(executor_input: dict[str, Any]) -> list[str]:
    """Removes the output artifacts TFX cannot type (the launcher's executor-logs); returns
    "key (type)" for each."""
    artifacts = executor_input.get("outputs", {}).get("artifacts", {})
    dropped = []
    for key in sorted(artifacts):
        types = [a.get("type") or {} for a in artifacts[key].get("artifacts", [])]
        if types and not all(_tfx_can_type(t) for t in types):
            dropped.append(f"{key} ({types[0].get('schemaTitle') or 'untyped'})")
            del artifacts[key]
    return dropped


def _find_flag(argv: list[str], flag: str) -> tuple[int, int, str] | None:
    """(start, stop, value) of `flag VALUE` or `flag=VALUE` in argv."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return i, i + 2, argv[i + 1]
        if arg.startswith(flag + "="):
            return i, i + 1, arg[len(flag) + 1:]
    return None


def patched_argv(argv: list[str]) -> list[str]:
    """argv for TFX's entrypoint: input types restored, outputs TFX cannot type left out."""
    argv = list(argv)
    invocation = _find_flag(argv, INVOCATION_FLAG)
    if invocation is None:
        return argv
    start, stop, text = invocation
    executor_input = json.loads(text)
    found = _find_flag(argv, INPUTS_SPEC_FLAG)
    declared = {} if found is None else \
        {key: spec["artifactType"] for key, spec in json.loads(found[2]).get("artifacts", {}).items()}
    restored = restore_input_types(executor_input, declared)
    if restored:
        print(f"[entrypoint] restored the declared types of inputs {', '.join(sorted(set(restored)))} "
              f"(sent without a schema)", flush=True)
    dropped = drop_untyped_outputs(executor_input)
    if dropped:
        print(f"[entrypoint] outputs kept by the launcher, not passed to TFX: {', '.join(dropped)}", flush=True)
    if restored or dropped:
        argv[start:stop] = [INVOCATION_FLAG, json.dumps(executor_input)]
    return argv


def main(argv: list[str] | None = None) -> None:
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entrypoint

    from simsiam_tfx.config import ConfigError
    from simsiam_tfx.pipeline import runner_duties
    runner_duties.stop_beam_self_packaging()
    args = patched_argv(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *args]
    try:
        # _parse_flags is TFX's own parser for this entrypoint (executor class, invocation, Beam args).
        app.run(tfx_entrypoint.main, flags_parser=tfx_entrypoint._parse_flags)  # pylint: disable=protected-access
    except ConfigError as e:
        print(f"simsiam-tfx: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
