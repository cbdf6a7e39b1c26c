"""The run report: `<output>/report/index.html` and the PNGs it shows, built from the output folder,
MLMD and the run's artifacts (so `simsiam-tfx report --output DIR` re-makes it at any time).

It shows what SimSiam learned: the training curves of every pre-training run in the output folder,
the augmented views the Trainer trains on, the nearest neighbours and an embedding map by the
encoder's features (beside the random-init encoder's), the probe and the Evaluator's gate, a
confusion matrix, the data and the skipped files. The same augmentation preview and neighbour grids
go to TensorBoard as image summaries, with the `eval` embeddings for its Projector.

Pictures are drawn by matplotlib (Agg, no display) and the page by a Jinja2 template: no script, no
CDN, it opens offline.
"""
from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import os
from typing import Any, Optional

import numpy as np

from simsiam_tfx import contract, files
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.features import LABEL_KEY
from simsiam_tfx.pipeline.summary import more_time_line

REPORT_DIR = "report"
TEMPLATE = os.path.join(os.path.dirname(__file__), "templates", "report.html")
# Enough for stable neighbours, an embedding map and a confusion matrix; bounded so the report
# costs seconds on large data sets.
MAX_REFERENCE = 5000
MAX_EVAL = 2000
NUM_QUERIES = 6
NUM_NEIGHBOURS = 6
NUM_PREVIEW = 8
PREVIEW_SEED = 0


@dataclasses.dataclass
class RunArtifacts:
    """What the report reads from one run, resolved from MLMD."""
    config: PipelineConfig
    class_names: tuple[str, ...]
    encoder_dir: Optional[str]  # SimSiamPretrain's exported encoder
    classifier_dir: Optional[str]  # LinearProbe's served model
    transformed: Optional[str]  # Transform's transformed_examples folder
    transform_graph: Optional[str]  # Transform's transform_graph folder (the graph and its policy)
    raw_examples: Optional[str]  # ExampleGen's examples folder
    pretrain_runs: list[tuple[int, list[dict]]]  # (execution id, per-epoch history), oldest first


def report_dir(output_dir: str) -> str:
    return os.path.join(output_dir, REPORT_DIR)


def write_report(output_dir: str, pipeline_name: str, summary: Optional[dict] = None) -> Optional[str]:
    """Builds the report; returns index.html's path, or None after saying in one line why not
    (a report is never worth failing a run for)."""
    try:
        return build(output_dir, pipeline_name, summary)
    except Exception as e:  # noqa: BLE001 (any failure: missing artifact, old output folder, ...)
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        print(f"report: not written ({type(e).__name__}: {reason})", flush=True)
        return None


def build(output_dir: str, pipeline_name: str, summary: Optional[dict] = None) -> str:
    import matplotlib
    matplotlib.use("Agg")
    from simsiam_tfx.trainer import tensorboard_export

    if summary is None:
        with open(os.path.join(output_dir, contract.RUN_SUMMARY_FILE)) as f:
            summary = json.load(f)
    run = _resolve(output_dir, pipeline_name)
    out = report_dir(output_dir)
    os.makedirs(out, exist_ok=True)
    figures: dict[str, str] = {}
    figures["curves"] = _save(_curves_figure(run.pretrain_runs, summary), out, "curves.png")

    size = run.config.data.image_size
    reference = _labelled(run.transformed, "probe_train", size, MAX_REFERENCE)
    queries = _labelled(run.transformed, "eval", size, MAX_EVAL)
    views, policy = _augmentation_preview(queries[0][:NUM_PREVIEW], run.transform_graph,
                                          run.config.pretrain_settings().view_size)
    figures["augmentations"] = _save(_views_figure(queries[0][:NUM_PREVIEW], views, policy["name"]), out,
                                     "augmentations.png")

    encoders = {"SimSiam": _load_encoder(run.encoder_dir), "random-init": _random_encoder(run.config)}
    features = {name: (_features(enc, reference[0]), _features(enc, queries[0])) for name, enc in encoders.items()}
    neighbours = {name: _nearest(ref, query[:NUM_QUERIES], NUM_NEIGHBOURS) for name, (ref, query) in features.items()}
    figures["neighbours"] = _save(_neighbours_figure(queries, reference, neighbours, run.class_names), out,
                                  "neighbours.png")
    figures["embedding"] = _save(_embedding_figure({n: f[1] for n, f in features.items()}, queries[1],
                                                   run.class_names), out, "embedding.png")
    figures["probe"] = _save(_probe_figure(summary, len(run.class_names)), out, "probe.png")
    predictions = _predict(run.classifier_dir, run.raw_examples, MAX_EVAL)
    if predictions is not None:
        figures["confusion"] = _save(_confusion_figure(*predictions, run.class_names), out, "confusion.png")
    figures["data"] = _save(_data_figure(summary, reference[1], queries[1], run.class_names), out, "data.png")

    _tensorboard(os.path.join(out, "tensorboard"), queries, reference, views, neighbours, features["SimSiam"][1],
                 run.class_names, tensorboard_export)
    skipped = _skipped(summary)
    page = _render(summary, figures, skipped, run, len(reference[0]), len(queries[0]), output_dir)
    path = os.path.join(out, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


# ---- reading the run ------------------------------------------------------------------------

def _resolve(output_dir: str, pipeline_name: str) -> RunArtifacts:
    from simsiam_tfx.components import trainer_config
    from simsiam_tfx.pipeline.summary import RunRecord

    metadata = os.path.join(output_dir, "metadata.sqlite")
    if not os.path.exists(metadata):
        raise FileNotFoundError(f"no MLMD store at {metadata} (is {output_dir} a run's output folder?)")
    record = RunRecord(metadata, pipeline_name)
    execution = record.executions.get(contract.PRETRAIN)
    if execution is None or contract.CUSTOM_CONFIG not in execution.custom_properties:
        raise LookupError("the last run has no SimSiamPretrain execution")
    custom = json.loads(execution.custom_properties[contract.CUSTOM_CONFIG].string_value)
    settings = trainer_config.read(trainer_config.with_data_plan(custom, _data_facts(record)))

    def uri(node, key, sub=""):
        artifact = record.output(node, key)
        return os.path.join(artifact.uri, sub) if artifact is not None else None

    return RunArtifacts(settings.config, settings.class_names,
                        uri(contract.PRETRAIN, contract.MODEL, contract.SERVING_DIR),
                        uri(contract.PROBE, contract.MODEL, contract.SERVING_DIR),
                        uri(contract.TRANSFORM, contract.TRANSFORMED_EXAMPLES),
                        uri(contract.TRANSFORM, contract.TRANSFORM_GRAPH), uri(contract.EXAMPLE_GEN, contract.EXAMPLES),
                        _pretrain_histories(record))


def _data_facts(record) -> dict:
    """What ExampleGen recorded of the data, as the Trainers received it at run time."""
    from tfx.types import standard_artifacts

    from simsiam_tfx.components.example_gen import data_facts
    examples = record.output(contract.EXAMPLE_GEN, contract.EXAMPLES)
    if examples is None:
        raise LookupError("the last run has no ExampleGen output")
    artifact = standard_artifacts.Examples()
    artifact.set_mlmd_artifact(examples)
    return data_facts(artifact)


def _pretrain_histories(record) -> list[tuple[int, list[dict]]]:
    """Every SimSiamPretrain run recorded in this MLMD store (cached executions add nothing new)."""
    runs = []
    for artifact in record.store.get_artifacts_by_type("ModelRun"):
        metrics = (files.read_json(os.path.join(artifact.uri, contract.PRETRAIN_METRICS_FILE))
                   if contract.PRETRAIN in artifact.uri else None)
        if metrics is not None:
            history = metrics.get("history") or []
            if history:
                runs.append((int(os.path.basename(artifact.uri.rstrip("/"))), history))
    return sorted(runs)


def _split_files(folder: Optional[str], split: str) -> list[str]:
    if folder is None:
        raise LookupError("an artifact the report needs is missing from the last run")
    paths = sorted(glob.glob(os.path.join(folder, f"Split-{split}", "*")))
    if not paths:
        raise FileNotFoundError(f"no {split} examples under {folder}")
    return paths


def _labelled(transformed: Optional[str], split: str, size: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `limit` transformed images of `split`, float32 [0, 1], and their labels."""
    from simsiam_tfx.trainer import data
    ds = data.labelled_images(_split_files(transformed, split), size, 256).unbatch().take(limit).batch(256)
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy().reshape(-1))
    return np.concatenate(images), np.concatenate(labels)


def _load_encoder(path: Optional[str]):
    import tf_keras as keras
    if path is None:
        raise LookupError("the pre-trained encoder is missing from the last run")
    return keras.models.load_model(path, compile=False)


def _random_encoder(config: PipelineConfig):
    from simsiam_tfx.trainer import probe
    p = config.pretrain_settings()
    return probe.random_init_encoder(p.backbone, p.width, config.data.image_size)


def _features(encoder, images: np.ndarray) -> np.ndarray:
    return np.concatenate([encoder(images[i:i + 256], training=False).numpy()
                           for i in range(0, len(images), 256)]).astype(np.float32)


def _nearest(reference: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of each query's k nearest reference rows by cosine similarity (the kNN monitor's)."""
    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.argsort(-(unit(queries) @ unit(reference).T), axis=1)[:, :k]


def _augmentation_preview(images: np.ndarray, transform_graph: Optional[str], view_size: int):
    """((view 1s, view 2s), policy): two views (of `view_size`) of each image drawn by the run's
    Transform graph, as the SimSiam Trainer draws them, from a fixed seed, shown at the images'
    side (nearest pixels); the policy as the artifact records it."""
    import tensorflow as tf

    from simsiam_tfx.trainer import data
    if transform_graph is None:
        raise LookupError("the last run has no Transform graph")
    transform = data.Transform.load(transform_graph)
    pixels = tf.cast(tf.round(tf.constant(images) * 255.0), tf.uint8)
    serialized = tf.map_fn(tf.io.serialize_tensor, pixels, fn_output_signature=tf.TensorSpec([], tf.string))
    views = data.graph_views(transform, view_size)(serialized, tf.constant([PREVIEW_SEED, 0], tf.int64))
    side = images.shape[1:3]
    return tuple(tf.image.resize(v, side, method="nearest").numpy() for v in views), transform.policy


def _predict(classifier_dir: Optional[str], raw_examples: Optional[str], limit: int):
    """(true labels, predicted class ids) on `eval` through the served model's serving_default
    signature (Transform graph included), as the Evaluator computes accuracy; None without a model."""
    import tensorflow as tf
    if classifier_dir is None or not os.path.isdir(classifier_dir):
        return None
    serve = tf.saved_model.load(classifier_dir).signatures["serving_default"]
    records = tf.data.TFRecordDataset(_split_files(raw_examples, "eval"), compression_type="GZIP")
    truth, predicted = [], []
    for batch in records.take(limit).batch(256):
        labels = tf.io.parse_example(batch, {LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)})[LABEL_KEY]
        truth.append(labels.numpy())
        predicted.append(serve(examples=batch)["class_id"].numpy())
    return np.concatenate(truth), np.concatenate(predicted)


def _skipped(summary: dict) -> dict[str, Any]:
    examples = summary.get("examples") or {}
    rows = []
    path = examples.get("skipped_report")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                rows.append(json.loads(line))
                if len(rows) == 100:
                    break
    return {"count": examples.get("skipped", 0), "by_reason": examples.get("skipped_by_reason") or {},
            "rows": rows, "report": path}


# ---- figures ------------------------------------------------------------------------------

def _save(figure, folder: str, name: str) -> str:
    import matplotlib.pyplot as plt
    figure.savefig(os.path.join(folder, name), dpi=100, bbox_inches="tight")
    plt.close(figure)
    return name


def _curves_figure(runs: list[tuple[int, list[dict]]], summary: dict):
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    panels = [("loss", "loss (floor −1)"), ("learning_rate", "learning rate"),
              ("z_std", "z-std of ℓ2-normalised z"), ("knn_accuracy", "kNN accuracy (eval)")]
    for number, (execution_id, history) in enumerate(runs):
        latest = number == len(runs) - 1
        for ax, (key, _) in zip(axes, panels):
            # Only the epochs that have the value: kNN runs every few epochs (pretrain.knn_every).
            points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
            if points:
                epochs, values = zip(*points)
                ax.plot(epochs, values, marker="." if len(epochs) < 30 else None,
                        linewidth=2 if latest else 1, alpha=1.0 if latest else 0.6,
                        label=f"run {execution_id}" + (" (this run)" if latest else ""))
    for ax, (key, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].axhline(-1.0, color="grey", linestyle="--", linewidth=1, label="floor −1 (collapse)")
    healthy = (summary.get("pretrain") or {}).get("z_std_healthy")
    if healthy:
        axes[2].axhline(healthy, color="green", linestyle="--", linewidth=1, label=f"1/√d = {healthy:.3f}")
        axes[2].set_ylim(bottom=0)
    for ax in (axes[0], axes[2], axes[3]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if not runs:
        axes[0].text(0.5, 0.5, "no per-epoch history recorded", ha="center", transform=axes[0].transAxes)
    figure.tight_layout()
    return figure


def _show(ax, image, title=None, colour=None):
    ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if colour:
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)
    if title:
        ax.set_title(title, fontsize=7)


def _views_figure(images: np.ndarray, views: tuple[np.ndarray, np.ndarray], policy_name: str):
    import matplotlib.pyplot as plt
    n = len(images)
    figure, axes = plt.subplots(3, n, figsize=(1.3 * n, 4.2), squeeze=False)
    for j in range(n):
        for i, (row, name) in enumerate(zip((images, views[0], views[1]), ("image", "view 1", "view 2"))):
            _show(axes[i][j], row[j])
            if j == 0:
                axes[i][j].set_ylabel(name, fontsize=8)
    figure.suptitle(f"augmentation policy '{policy_name}' (drawn by the run's Transform graph, seed "
                    f"{PREVIEW_SEED})", fontsize=9)
    figure.tight_layout()
    return figure


def _neighbours_figure(queries, reference, neighbours: dict[str, np.ndarray], class_names):
    import matplotlib.pyplot as plt
    names = list(neighbours)
    k = NUM_NEIGHBOURS
    rows = len(next(iter(neighbours.values())))
    figure, axes = plt.subplots(rows, 1 + len(names) * k, figsize=(1.0 * (1 + len(names) * k), 1.15 * rows),
                                squeeze=False)
    for i in range(rows):
        label = int(queries[1][i])
        _show(axes[i][0], queries[0][i], f"eval: {_name(class_names, label)}", "black")
        for n, name in enumerate(names):
            for j, index in enumerate(neighbours[name][i]):
                match = int(reference[1][index]) == label
                title = name if (i == 0 and j == 0) else None
                _show(axes[i][1 + n * k + j], reference[0][index], title, "tab:green" if match else "tab:red")
    figure.suptitle(f"{k} nearest probe_train images of each eval image (cosine); green: same class", fontsize=9)
    figure.tight_layout()
    return figure


def _name(class_names, label: int) -> str:
    return class_names[label] if 0 <= label < len(class_names) else str(label)


def _embedding_figure(features: dict[str, np.ndarray], labels: np.ndarray, class_names):
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    figure, axes = plt.subplots(1, len(features), figsize=(6 * len(features), 5), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax, (name, x) in zip(axes[0], features.items()):
        pca = PCA(n_components=2, random_state=0)
        points = pca.fit_transform(x)
        for c in np.unique(labels):
            mask = labels == c
            ax.scatter(points[mask, 0], points[mask, 1], s=6, color=cmap(int(c) % cmap.N),
                       label=_name(class_names, int(c)))
        explained = pca.explained_variance_ratio_.sum()
        ax.set_title(f"{name} encoder: PCA of eval features ({explained:.0%} of variance)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    figure.tight_layout()
    return figure


def _probe_figure(summary: dict, num_classes: int = 0):
    import matplotlib.pyplot as plt
    probe = summary.get("probe") or {}
    pretrain = summary.get("pretrain") or {}
    evaluator = summary.get("evaluator") or {}
    bars = [("SimSiam\nlinear probe", probe.get("accuracy"), "tab:blue"),
            ("random-init\nlinear probe", probe.get("random_init_accuracy"), "tab:grey"),
            ("SimSiam\nkNN", pretrain.get("knn_accuracy"), "tab:cyan"),
            ("supervised\nfrom scratch", probe.get("supervised_accuracy"), "tab:orange")]
    bars = [b for b in bars if b[1] is not None]
    figure, ax = plt.subplots(figsize=(7, 3.6))
    positions = range(len(bars))
    ax.bar(positions, [b[1] for b in bars], color=[b[2] for b in bars])
    for x, (_, value, _) in zip(positions, bars):
        ax.text(x, value + 0.01, f"{value:.3f}", ha="center", fontsize=8)
    ax.set_xticks(list(positions), [b[0] for b in bars], fontsize=8)
    if evaluator.get("threshold") is not None:
        ax.axhline(evaluator["threshold"], color="tab:red", linestyle="--", linewidth=1,
                   label=f"Evaluator floor {evaluator['threshold']:g}")
    if evaluator.get("baseline_accuracy") is not None:
        ax.axhline(evaluator["baseline_accuracy"], color="tab:green", linestyle=":", linewidth=1.5,
                   label=f"previous blessed model {evaluator['baseline_accuracy']:.3f}")
    if probe.get("chance_accuracy") is not None:
        ax.axhline(probe["chance_accuracy"], color="grey", linestyle=":", linewidth=1,
                   label=f"chance (most frequent class) {probe['chance_accuracy']:.3f}")
    elif num_classes > 1:
        ax.axhline(1.0 / num_classes, color="grey", linestyle=":", linewidth=1, label=f"chance 1/{num_classes}")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy on eval")
    gate = summary.get("gate") or {}
    verdict = "BLESSED" if gate.get("blessed", evaluator.get("blessed")) else "not blessed"
    ax.set_title(f"probe accuracy on eval: {verdict}", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    return figure


def _confusion_figure(truth: np.ndarray, predicted: np.ndarray, class_names):
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay
    labels = list(range(len(class_names)))
    figure, ax = plt.subplots(figsize=(1.0 + 0.55 * len(labels), 0.8 + 0.5 * len(labels)))
    ConfusionMatrixDisplay.from_predictions(truth, predicted, labels=labels, display_labels=list(class_names),
                                            ax=ax, colorbar=False, xticks_rotation=45, cmap="Blues")
    ax.set_title(f"served model on eval ({len(truth)} images): accuracy {np.mean(truth == predicted):.3f}", fontsize=9)
    figure.tight_layout()
    return figure


def _data_figure(summary: dict, reference_labels: np.ndarray, eval_labels: np.ndarray, class_names):
    import matplotlib.pyplot as plt
    examples = summary.get("examples") or {}
    figure, ax = plt.subplots(figsize=(max(6, 0.6 * len(class_names) + 2), 3.4))
    x = np.arange(len(class_names))
    width = 0.4
    for shift, (name, labels) in zip((-width / 2, width / 2), (("probe_train", reference_labels),
                                                               ("eval", eval_labels))):
        counts = np.bincount(labels[labels >= 0], minlength=len(class_names))[:len(class_names)]
        total = examples.get(name, len(labels))
        shown = "" if total == len(labels) else f", first {len(labels)} shown"
        ax.bar(x + shift, counts, width, label=f"{name} ({total}{shown})")
    ax.set_xticks(x, list(class_names), rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("examples")
    ax.set_title(f"examples per class; pretrain: {examples.get('pretrain', '?')} unlabelled", fontsize=9)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


# ---- TensorBoard --------------------------------------------------------------------------

def _tensorboard(log_dir, queries, reference, views, neighbours, eval_features, class_names, export) -> None:
    rows = [[queries[0][i], views[0][i], views[1][i]] for i in range(len(views[0]))]
    grids = {"report/augmentation_preview": export.image_grid(rows)}
    for name, indices in neighbours.items():
        grids[f"report/nearest_neighbours_{name}"] = export.image_grid(
            [[queries[0][i]] + [reference[0][j] for j in row] for i, row in enumerate(indices)])
    export.write_image_summaries(log_dir, grids)
    export.export_projector(os.path.join(log_dir, "projector"), eval_features,
                            [_name(class_names, int(c)) for c in queries[1]], thumbnails=queries[0])


# ---- the page -----------------------------------------------------------------------------

def _render(summary, figures, skipped, run: RunArtifacts, num_reference: int, num_queries: int,
            output_dir: str) -> str:
    import jinja2
    with open(TEMPLATE, encoding="utf-8") as f:
        template = jinja2.Environment(autoescape=True).from_string(f.read())
    return template.render(
        summary=summary, figures=figures, skipped=skipped, config=run.config, output_dir=output_dir,
        more_time=more_time_line((summary.get("pretrain") or {}).get("more_time"), None),
        class_names=run.class_names, augment_policy=(summary.get("augment_policy") or {}).get("name", "?"),
        num_runs=len(run.pretrain_runs), num_reference=num_reference, num_queries=num_queries,
        neighbours=NUM_NEIGHBOURS, generated=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        summary_json=json.dumps(summary, indent=2, ensure_ascii=False))
