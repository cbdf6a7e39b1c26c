"""run_summary.json: what the last pipeline run did, read back from its artifacts in MLMD."""
from __future__ import annotations

import json
import os
from typing import Any, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from simsiam_tfx import contract, files
from simsiam_tfx.components import model_record
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.features import SPLITS

_STATE_NAMES = {metadata_store_pb2.Execution.COMPLETE: "executed", metadata_store_pb2.Execution.CACHED: "cached",
                metadata_store_pb2.Execution.FAILED: "failed"}


class RunRecord:
    """The executions and output artifacts of one pipeline run, per node id."""

    def __init__(self, metadata_path: str, pipeline_name: str):
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = metadata_path
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        self.store = mlmd.MetadataStore(config)
        runs = self.store.get_contexts_by_type("pipeline_run")
        if not runs:
            raise RuntimeError(f"no pipeline run recorded in {metadata_path}")
        run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
        self.run_id = run.name
        self.executions: dict[str, metadata_store_pb2.Execution] = {}
        prefix = f"{pipeline_name}."
        for execution in self.store.get_executions_by_context(run.id):
            for context in self.store.get_contexts_by_execution(execution.id):
                if context.type == "node" and context.name.startswith(prefix):
                    self.executions[context.name[len(prefix):]] = execution

    def states(self) -> dict[str, str]:
        return {node: _STATE_NAMES.get(e.last_known_state, "other") for node, e in sorted(self.executions.items())}

    def seconds(self) -> dict[str, float]:
        """Wall time of each node's execution as MLMD recorded it (≈ 0 for cache hits)."""
        return {node: round((e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000.0, 1)
                for node, e in sorted(self.executions.items())}

    def output(self, node: str, key: str) -> Optional[metadata_store_pb2.Artifact]:
        execution = self.executions.get(node)
        if execution is None:
            return None
        for event in self.store.get_events_by_execution_ids([execution.id]):
            if event.type == metadata_store_pb2.Event.OUTPUT and any(
                    step.key == key for step in event.path.steps if step.HasField("key")):
                return self.store.get_artifacts_by_id([event.artifact_id])[0]
        return None


def _split_counts(statistics: metadata_store_pb2.Artifact) -> dict[str, int]:
    import tensorflow_data_validation as tfdv
    from tfx.types import artifact_utils, standard_artifacts
    artifact = standard_artifacts.ExampleStatistics()
    artifact.set_mlmd_artifact(statistics)
    counts = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), "FeatureStats.pb")
        if os.path.exists(path):
            counts[split] = int(tfdv.load_stats_binary(path).datasets[0].num_examples)
    return counts


def _describe_failure(failure) -> str:
    threshold = failure.metric_threshold
    value = failure.metric_value.double_value.value
    if threshold.HasField("value_threshold"):
        return f"accuracy {value:.4f} is below the floor {threshold.value_threshold.lower_bound.value:g}"
    if threshold.HasField("change_threshold"):
        return (f"accuracy changed by {value:+.4f} against the last blessed model, more than the allowed "
                f"{-threshold.change_threshold.absolute.value:.2g} drop")
    return failure.message or str(threshold).replace("\n", " ")


def evaluation_result(evaluation_uri: str) -> dict[str, Any]:
    """Accuracy of the candidate (and of the baseline, when there was one) and the failed thresholds."""
    import tensorflow_model_analysis as tfma
    result: dict[str, Any] = {"accuracy": None, "baseline_accuracy": None, "failures": []}
    for metrics in tfma.load_metrics(evaluation_uri):
        for key in metrics.metric_keys_and_values:
            if key.key.name == "sparse_categorical_accuracy":
                target = "baseline_accuracy" if key.key.model_name == "baseline" else "accuracy"
                if not key.key.HasField("sub_key") and not key.key.is_diff:
                    result[target] = float(key.value.double_value.value)
    validation = tfma.load_validation_result(evaluation_uri)
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            result["failures"].append(_describe_failure(failure))
    return result


def _data_record(examples: Optional[metadata_store_pb2.Artifact]) -> dict[str, Any]:
    """What ExampleGen recorded about the data this run read (components/example_gen.record_plan)."""
    facts = contract.examples_record(examples) if examples is not None else None
    if facts is None:
        return {}
    # The summary's own key names (unchanged since the first summaries).
    record = {"class_names": facts["class_names"], "fingerprint": facts.get(contract.DATA_FINGERPRINT, ""),
              "description": facts.get(contract.DATA_DESCRIPTION, ""), "examples_uri": facts["examples_uri"]}
    record.update({key: facts[key] for key in ("span", "example_counts") if key in facts})
    return record


def build(config: PipelineConfig, dataset: str, seconds_total: float) -> dict[str, Any]:
    record = RunRecord(config.metadata_path, config.pipeline_name)
    summary: dict[str, Any] = {"dataset": dataset, "run_id": record.run_id, "components": record.states(),
                               "component_seconds": record.seconds()}

    statistics = record.output(contract.STATISTICS_GEN, contract.STATISTICS)
    summary["examples"] = _split_counts(statistics) if statistics else {}
    examples = record.output(contract.EXAMPLE_GEN, contract.EXAMPLES)
    if examples is not None and contract.SKIPPED_COUNT in examples.custom_properties:
        props = examples.custom_properties
        summary["examples"]["skipped"] = int(props[contract.SKIPPED_COUNT].int_value)
        summary["examples"]["skipped_by_reason"] = json.loads(props[contract.SKIPPED_BY_REASON].string_value)
        summary["examples"]["skipped_report"] = props[contract.SKIPPED_REPORT].string_value
    summary["data"] = _data_record(examples)
    # The augmentation policy the views were drawn with, as the Transform artifact records it.
    graph = record.output(contract.TRANSFORM, contract.TRANSFORM_GRAPH)
    policy = graph.custom_properties.get(contract.AUGMENT_POLICY_JSON) if graph is not None else None
    summary["augment_policy"] = json.loads(policy.string_value) if policy is not None else None

    pretrain_model_run = record.output(contract.PRETRAIN, contract.MODEL_RUN)
    pretrain = (files.read_json(os.path.join(pretrain_model_run.uri, contract.PRETRAIN_METRICS_FILE))
                if pretrain_model_run else None)
    if pretrain:
        pretrain.pop("history", None)  # per-epoch values live in the Trainer's TensorBoard logs
        pretrain["tensorboard"] = os.path.join(pretrain_model_run.uri, contract.TENSORBOARD_DIR)
    summary["pretrain"] = pretrain
    # The retraining policy this model was pre-trained under, and why: the one record of it, beside
    # the encoder (components/warm_start.py).
    encoder = record.output(contract.PRETRAIN, contract.MODEL)
    summary["retraining"] = model_record.retraining_of(os.path.join(encoder.uri, contract.SERVING_DIR)) \
        if encoder is not None else None

    probe_model_run = record.output(contract.PROBE, contract.MODEL_RUN)
    summary["probe"] = (files.read_json(os.path.join(probe_model_run.uri, contract.PROBE_METRICS_FILE))
                        if probe_model_run else None)

    evaluation = record.output(contract.EVALUATOR, contract.EVALUATION)
    blessing = record.output(contract.EVALUATOR, contract.BLESSING)
    evaluator = evaluation_result(evaluation.uri) if evaluation else {"accuracy": None, "failures": []}
    evaluator["threshold"] = config.eval.min_accuracy
    evaluator["max_regression"] = config.eval.max_regression
    evaluator["blessed"] = bool(blessing and blessing.custom_properties[contract.BLESSED].int_value == 1)
    summary["evaluator"] = evaluator

    gate_blessing = record.output(contract.MODEL_GATE, contract.BLESSING)
    from simsiam_tfx.components.model_gate import GATE_FILE  # TFX: imported once the console is quiet
    summary["gate"] = files.read_json(os.path.join(gate_blessing.uri, GATE_FILE)) if gate_blessing else None

    baseline = record.output(contract.PUSHED_BASELINE, contract.BASELINE_MODEL)
    has_version = baseline is not None and contract.PUSHED_VERSION in baseline.custom_properties
    evaluator["baseline_version"] = int(baseline.custom_properties[contract.PUSHED_VERSION].int_value) or None \
        if has_version else None

    pushed = record.output(contract.PUSHER, contract.PUSHED_MODEL)
    was_pushed = bool(pushed and pushed.custom_properties[contract.PUSHED].int_value == 1)
    summary["pushed_model"] = pushed.custom_properties[contract.PUSHED_DESTINATION].string_value if was_pushed else None
    if pushed is not None and contract.ALREADY_PUSHED_VERSION in pushed.custom_properties:
        summary["already_served_version"] = int(pushed.custom_properties[contract.ALREADY_PUSHED_VERSION].int_value)
    summary["seconds_total"] = seconds_total
    return summary


def write(summary: dict[str, Any], path: str) -> None:
    """Written aside and renamed into place: a reader never sees half a summary."""
    files.write_json(path, summary, indent=2, sort_keys=False)


def more_time_line(verdict: dict | None, seconds: float | None) -> str | None:
    """Whether more pre-training time would pay, from the run's kNN curve (trainer/pretrain.py
    more_time_verdict), in words."""
    if not verdict:
        return None
    rise, epochs = verdict["knn_rise_last_quarter"], verdict["last_quarter_epochs"]
    if verdict["still_rising"]:
        minutes = max(1, round(verdict["suggested_budget_seconds"] / 60))
        return (f"likely to pay: kNN accuracy was still rising ({rise:+.3f} over the last {epochs} epochs); "
                f"try about twice the pre-training time (--time-budget {minutes}m)")
    return (f"unlikely to pay at these settings: kNN accuracy was flat ({rise:+.3f} over the last {epochs} "
            f"epochs)")


def describe(summary: dict[str, Any]) -> str:
    """A short human-readable account of the run."""
    lines = [f"SimSiam TFX run on {summary['dataset']} finished in {summary['seconds_total']:.0f} s."]
    ex = summary.get("examples") or {}
    if ex:
        lines.append("  examples: " + ", ".join(f"{k} {ex[k]}" for k in SPLITS if k in ex))
    if ex.get("skipped"):
        reasons = ", ".join(f"{n} {r}" for r, n in ex["skipped_by_reason"].items())
        lines.append(f"  skipped files: {ex['skipped']} ({reasons}); list: {ex['skipped_report']}")
    cached = [n for n, s in summary.get("components", {}).items() if s == "cached"]
    if cached:
        lines.append("  reused from cache: " + ", ".join(cached))
    data = summary.get("data") or {}
    if data.get("span"):
        lines.append(f"  data: span {data['span']} (fingerprint {data['fingerprint']})")
    policy = summary.get("augment_policy")
    if policy:
        lines.append(f"  augmentation: {policy['name']} (Transform's policy; every parameter in run_summary.json)")
    retraining = summary.get("retraining")
    if retraining:
        lines.append(f"  retraining: {retraining['policy'].replace('_', ' ')} ({retraining['reason']})")
    pre = summary.get("pretrain")
    if pre:
        knn = f", kNN accuracy {pre['knn_accuracy']:.3f}" if pre.get("knn_accuracy") is not None else ""
        lines.append(f"  pre-training: {pre['epochs']} epochs, final loss {pre['final_loss']:.3f}, "
                     f"z-std {pre['z_std']:.4f} (healthy {pre['z_std_healthy']:.4f}){knn}, "
                     f"{pre['images_per_second']:.0f} images/s" + ("  -- COLLAPSED" if pre.get("collapsed") else ""))
        budget = pre.get("time_budget")
        if budget:
            lines.append(f"  time budget: {budget['budget']}: {budget['epochs']} epochs chosen at "
                         f"{budget['images_per_second']:.0f} images/s (measured on the first steps)")
        verdict = more_time_line(pre.get("more_time"), pre.get("seconds"))
        if verdict:
            lines.append(f"  more time: {verdict}")
    probe = summary.get("probe")
    if probe:
        gain = probe["gain_over_random_init"]
        verdict = ("pre-training beats the random-init encoder" if gain > 0 else
                   "pre-training has NOT beaten the random-init encoder yet (train longer)")
        lines.append(f"  linear probe: {probe['accuracy']:.3f} vs random-init encoder {probe['random_init_accuracy']:.3f} "
                     f"({gain:+.3f}): {verdict}")
        if probe.get("supervised_accuracy") is not None:
            lines.append(f"  supervised-from-scratch reference ({probe['supervised_epochs']} epochs): "
                         f"{probe['supervised_accuracy']:.3f}")
    ev = summary["evaluator"]
    acc = "n/a" if ev.get("accuracy") is None else f"{ev['accuracy']:.3f}"
    if ev["blessed"]:
        lines.append(f"  evaluator: accuracy {acc} >= floor {ev['threshold']} and no regression: BLESSED")
    else:
        why = "; ".join(ev.get("failures") or []) or "see the Evaluator's validation result"
        lines.append(f"  evaluator: accuracy {acc}, floor {ev['threshold']}: NOT blessed ({why})")
    gate = summary.get("gate")
    if gate and gate["blessed"]:
        lines.append("  gate: above chance, gain over random init, served classes kept: BLESSED")
    elif gate:
        failed = "; ".join(f"{c['name']}: {c['detail']}" for c in gate["checks"] if not c["passed"])
        lines.append(f"  gate: NOT blessed ({failed})")
    if summary.get("already_served_version"):
        lines.append(f"  pushed model: none (this model is already served as version {summary['already_served_version']})")
    else:
        lines.append(f"  pushed model: {summary['pushed_model'] or 'none (nothing pushed; earlier pushes are untouched)'}")
    if summary.get("report"):
        lines.append(f"  report: {summary['report']}")
    return "\n".join(lines)
