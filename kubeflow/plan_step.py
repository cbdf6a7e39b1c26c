"""PlanData: the first step of every compiled run, which decides the data version the run trains on.

A schedule (KFP recurring run, Vertex schedule) starts every run with the same parameters, so the
data version cannot be a parameter: it has to be found when the run starts. This step (an uncached
container task added by kubeflow/compile.py `finish_spec`) looks at the data as it is now:

- `input_base` is a folder holding a sources.json (a plan pinned by hand, `simsiam-tfx sources
  --to ...`): that plan is checked (checksum, images) and used as is;
- otherwise `input_base` is the span root: the plan the compiled data settings (`data_config`)
  make of the data now is written as a new `span-<N+1>/sources.json` when no span there holds it
  yet, else the existing span is reused (pipeline/runner_duties.py, resolve_data_span).

The chosen folder is this task's output parameter `input_base`, which ExampleGen takes as its own
`input_base` (a `taskOutputParameter`). Both launchers put the resolved value of every input
parameter in ExampleGen's cache key (kubeflow/pipelines backend/src/v2/cacheutils/cache.go,
GenerateCacheKey: `InputParameterValues`), so an unchanged bucket gives the same span folder and
a cache hit from ExampleGen through both Trainers, while new images give a new span and a run that
retrains. No driver hook is needed, so open-source KFP (which runs none) behaves as Vertex does.

How an output parameter is returned (kubeflow/pipelines backend/src/v2): the driver provisions
`outputs.parameters[<name>].outputFile` in the ExecutorInput (driver/driver.go, provisionOutputs);
after the command exits the launcher takes `parameterValues` from the ExecutorOutput file if
present, else reads each parameter's outputFile (component/launcher_v2.go,
collectOutputParameters). This step writes both, with the same value.

A user mistake (corrupt manifest, no images, a plan the settings cannot make) ends the step with
one line and exit code 2, before any other task runs: the served model stays where it is.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from simsiam_tfx import contract

OUTPUT = contract.INPUT_BASE_PARAM  # this task's output parameter: the folder ExampleGen reads
INPUT_BASE = contract.INPUT_BASE_PARAM  # pinned plan folder, or the span root
DATA_CONFIG = contract.DATA_CONFIG_PARAM  # the compiled DataConfig as JSON


def choose(input_base: str, data_config: str) -> tuple[str, dict[str, Any]]:
    """(folder holding the run's sources.json, what to report)."""
    import tensorflow as tf

    from simsiam_tfx.components import source_plan
    from simsiam_tfx.config import PipelineConfig
    from simsiam_tfx.pipeline import runner_duties
    if not input_base:
        from simsiam_tfx.config import ConfigError
        raise ConfigError("input_base is empty: give the data location (the span root, or a folder holding "
                          "sources.json)")
    if tf.io.gfile.exists(os.path.join(input_base, source_plan.PLAN_FILE)):
        plan = source_plan.load_plan(input_base)
        source_plan.check_has_images(plan, input_base)
        return input_base, {"pinned": True, "span": plan.span, "data_fingerprint": plan.content_fingerprint,
                            "classes": plan.num_classes}
    config = PipelineConfig.from_dict({"data": json.loads(data_config or "{}")}).validate()
    span = runner_duties.resolve_data_span(config.data, input_base)
    return span.folder, {"pinned": False, "span": span.number, "new_span": span.created,
                         "data_fingerprint": span.plan.content_fingerprint, "classes": span.plan.num_classes,
                         "files": span.plan.source_files}


def write_outputs(executor_input: dict[str, Any], value: str) -> None:
    import tensorflow as tf
    outputs = executor_input.get("outputs", {})
    for name, parameter in outputs.get("parameters", {}).items():
        if name == OUTPUT and parameter.get("outputFile"):
            tf.io.gfile.makedirs(os.path.dirname(parameter["outputFile"]))
            with tf.io.gfile.GFile(parameter["outputFile"], "w") as f:
                f.write(value)
    if outputs.get("outputFile"):
        tf.io.gfile.makedirs(os.path.dirname(outputs["outputFile"]))
        with tf.io.gfile.GFile(outputs["outputFile"], "w") as f:
            json.dump({"parameterValues": {OUTPUT: value}}, f)


def main(argv: list[str] | None = None) -> int:
    from simsiam_tfx.config import ConfigError
    parser = argparse.ArgumentParser(prog="python -m simsiam_tfx.kubeflow.plan_step")
    parser.add_argument("--executor_input", required=True, help="the ExecutorInput JSON (KFP's {{$}})")
    args = parser.parse_args(argv)
    executor_input = json.loads(args.executor_input)
    values = executor_input.get("inputs", {}).get("parameterValues", {})
    try:
        folder, report = choose(values.get(INPUT_BASE) or "", values.get(DATA_CONFIG) or "")
    except ConfigError as e:
        print(f"simsiam-tfx: error: {e}", file=sys.stderr, flush=True)
        return 2
    what = ("pinned plan" if report["pinned"] else
            "new span: the data changed" if report.get("new_span") else "unchanged data: same span")
    print(f"[plan] {folder} (span {report['span']}, {what}; data fingerprint {report['data_fingerprint']})",
          flush=True)
    write_outputs(executor_input, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
