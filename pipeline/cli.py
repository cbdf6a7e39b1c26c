"""The `simsiam-tfx` command line."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys

from simsiam_tfx.config import AUGMENT_PRESETS, BACKBONES, PRECISIONS, ConfigError, require
from simsiam_tfx.pipeline import console
from simsiam_tfx.pipeline.flags import add_flags, config_from_args

# Other packages (ours: simsiam_tfx.kubeflow) add commands through this entry-point group, so this
# CLI never imports the deployment layer above it.
COMMANDS_ENTRY_POINTS = "simsiam_tfx.commands"


def _cmd_run(args) -> int:
    config = config_from_args(args)
    from simsiam_tfx.pipeline import run_lock, summary
    error = None
    with run_lock.exclusive_output(config.output_dir), _console(args, config.output_dir) as log_path:
        # Imported under the quiet console: TensorFlow and TFX print their start-up noise on import.
        from simsiam_tfx.components.anomalies_gate import SchemaAnomalies
        from simsiam_tfx.components.pusher import PushRefused
        from simsiam_tfx.pipeline.local_runner import run_local
        abandoned = run_lock.cancel_abandoned_executions(config.metadata_path)
        if abandoned:
            print(f"marked {abandoned} execution(s) left running by a killed run as CANCELED in MLMD", flush=True)
        # From here on the summary describes this run, whatever happens to it.
        summary.write({"status": "running", "pid": os.getpid()}, config.summary_path)
        try:
            result = run_local(config)
        except BaseException as e:
            message = " ".join(str(e).split()) or type(e).__name__
            summary.write({"status": "failed", "error": f"{type(e).__name__}: {message}"[:2000]}, config.summary_path)
            if isinstance(e, (SchemaAnomalies, PushRefused)):
                error = str(e)
            elif isinstance(e, (ConfigError, KeyboardInterrupt)) or not log_path:  # --verbose: the traceback
                raise
            else:
                error = _failure(e, log_path)
    # Printed after the console is restored: onto the streams the caller gave us.
    if error:
        print(f"simsiam-tfx: error: {error}", file=sys.stderr)
        return 1
    print()
    print(summary.describe(result))
    print(f"  summary: {config.summary_path}")
    if log_path:
        print(f"  log: {log_path}")
    return 0


def _failure(error: Exception, log_path: str) -> str:
    """A failed run under the quiet console: the traceback goes into the log; returns one line
    saying which component failed, how, and where the traceback is."""
    import logging

    logging.getLogger("simsiam_tfx").error("the run failed", exc_info=error)
    where = f"{console.running_component()} failed: " if console.running_component() else ""
    message = " ".join(str(error).split())[:300]
    return f"{where}{type(error).__name__}: {message} (traceback: {log_path})"


def _console(args, output_dir: str, log_name: str = "run.log"):
    """The quiet console (pipeline/console.py) unless --verbose; yields the log's path or None."""
    import contextlib

    if getattr(args, "verbose", False):
        return contextlib.nullcontext(None)
    return console.quiet(os.path.join(output_dir, "logs", log_name))


def _read_paths(args) -> None:
    """The folders a read command is given, as paths (never patterns) TensorFlow can load from."""
    from simsiam_tfx.pipeline.flags import glob_safe_folder
    for name in ("output", "model", "serving_dir"):
        if getattr(args, name, None):
            setattr(args, name, glob_safe_folder(os.path.abspath(getattr(args, name)), create=False))


def _cmd_report(args) -> int:
    from simsiam_tfx.config import PipelineConfig
    from simsiam_tfx.pipeline import report
    _read_paths(args)
    if not os.path.exists(os.path.join(args.output, "metadata.sqlite")):
        raise ConfigError(f"{args.output} holds no run (no metadata.sqlite); pass a run's --output folder")
    with _console(args, args.output, "report.log"):
        path = report.write_report(args.output, args.pipeline_name or PipelineConfig().pipeline_name)
    if path is None:
        return 1
    print(f"report: {path}")
    return 0


def _cmd_infer(args) -> int:
    from simsiam_tfx.pipeline import inference
    predict = args.command == "predict"
    _read_paths(args)
    formats = inference.PREDICT_FORMATS if predict else inference.EMBED_FORMATS
    inference.output_format(args.to, formats)  # a wrong suffix fails before the model loads
    model = args.model or inference.newest_pushed_model(args.output)
    with _console(args, args.output, "embed.log" if not predict else "predict.log"):
        result = inference.run(args.images, model, args.to, args.batch_size, predict)
    reasons = ", ".join(f"{n} {r}" for r, n in result["skipped_by_reason"].items())
    print(f"{args.command}: {result['written']} images -> {result['to']} (model {result['model']})"
          + (f"; skipped {result['skipped']} ({reasons})" if result["skipped"] else ""))
    if not predict and args.to.endswith(".npy"):
        print(f"  file names, one per row: {inference.files_list_path(args.to)}")
    return 0


def _cmd_sources(args) -> int:
    from simsiam_tfx.components import source_plan
    config = config_from_args(args)
    plan = source_plan.plan(config.data, args.to)
    extra = {}
    if args.span == "auto":
        span = source_plan.write_span(plan, args.to)
        folder, extra = span.folder, {"span": span.number, "new_span": span.created,
                                      "data_fingerprint": span.plan.content_fingerprint}
    else:
        folder = source_plan.write_plan(plan, args.to)
    print(json.dumps({"input_base": folder, **extra, "num_classes": plan.num_classes,
                      **source_plan.summary(plan)}, indent=2, ensure_ascii=False))
    return 0


def served_record(serving_dir: str) -> dict:
    """Which data and retraining produced the model being served (the newest pushed version): its
    push record and the training record it carries (components/model_record.py)."""
    from simsiam_tfx.components import model_record
    from simsiam_tfx.components.model_record import newest_pushed
    newest = newest_pushed(serving_dir)
    if newest is None:
        raise ConfigError(f"no model has been pushed to {serving_dir}")
    record = model_record.training_record(newest.path)
    return {"version": newest.version, "path": newest.path, **{k: newest.record.get(k) for k in
            ("model_uri", "pushed_at", "fingerprint")},
            **({"data": record.get("data"), "retraining": record.get("retraining"),
                "encoder_uri": record.get("encoder_uri"), "probe": record.get("probe")} if record else
               {"data": None, "note": "this version carries no training record (pushed by an older version)"})}


def _cmd_served(args) -> int:
    _read_paths(args)
    serving_dir = args.serving_dir or os.path.join(args.output, "serving_model")
    print(json.dumps(served_record(serving_dir), indent=2, ensure_ascii=False))
    return 0


def _cmd_bench(args) -> int:
    from simsiam_tfx.components.preprocessing import policy_config
    from simsiam_tfx.trainer import bench
    require(args.width >= 1, f"--width must be >= 1, got {args.width}")
    require(16 <= args.image_size <= 512, f"--image-size must be in [16, 512], got {args.image_size}")
    require(args.batch_size >= 2, f"--batch-size must be >= 2, got {args.batch_size}")
    require(args.steps >= 1 and args.warmup >= 0, "--steps must be >= 1 and --warmup >= 0")
    result = bench.run(backbone=args.backbone, width=args.width, image_size=args.image_size,
                       batch_size=args.batch_size, precision=args.precision, xla=args.xla, steps=args.steps,
                       warmup=args.warmup, augment=policy_config(args.augment), augment_name=args.augment)
    print(json.dumps(result))
    return 0


def _add_verbose(parser) -> None:
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow, absl, Beam and TFX logging on the console (default: in <output>/logs)")


def build_parser() -> argparse.ArgumentParser:
    from simsiam_tfx import __version__
    parser = argparse.ArgumentParser(
        prog="simsiam-tfx",
        description="SimSiam self-supervised pre-training as a TFX pipeline: ExampleGen -> statistics/schema/"
                    "validation -> Transform -> SimSiam pre-training -> linear probe -> gated Evaluator -> Pusher.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)",
                         description="Run the whole pipeline locally with LocalDagRunner. Writes TFX artifacts, "
                                     "the MLMD store, the pushed model and run_summary.json under --output.")
    add_flags(run)
    _add_verbose(run)
    run.set_defaults(func=_cmd_run)

    report = sub.add_parser(
        "report", help="(re-)make the run report <output>/report/index.html from an output folder",
        description="Build the run report (training curves, augmented views, nearest neighbours, embedding map, "
                    "probe and gate, confusion matrix, data) from an output folder's MLMD store and artifacts, "
                    "and the TensorBoard image summaries and projector under <output>/report/tensorboard.")
    report.add_argument("--output", metavar="DIR", default="outputs", help="the run's --output folder")
    report.add_argument("--pipeline-name", default=None, help=argparse.SUPPRESS)
    _add_verbose(report)
    report.set_defaults(func=_cmd_report)

    for name, what, formats in (
            ("embed", "embeddings (one row per image, with its file name)", "npy, parquet or csv"),
            ("predict", "class name, class id and probability per image", "csv or jsonl")):
        infer = sub.add_parser(
            name, help=f"images -> {what}",
            description=f"Images -> {what}, streamed in batches. IMAGES is a folder (searched recursively), a glob, "
                        "a TFRecord file of tf.Examples with an `image` bytes feature (.tfrecord[.gz]) or one image. "
                        "Every image is checked as the pipeline checks it; unreadable files are skipped with their "
                        "reason.")
        infer.add_argument("images", metavar="IMAGES")
        infer.add_argument("--to", metavar="FILE", required=True, help=f"output file: {formats} (by its suffix)")
        infer.add_argument("--model", metavar="DIR", default=None,
                           help="a SavedModel: a pushed model, LinearProbe's model"
                                + (" or SimSiamPretrain's encoder" if name == "embed" else "")
                                + " (default: the newest pushed model under --output)")
        infer.add_argument("--output", metavar="DIR", default="outputs", help="the run's --output folder")
        infer.add_argument("--batch-size", type=int, default=64)
        _add_verbose(infer)
        infer.set_defaults(func=_cmd_infer)

    plan = sub.add_parser(
        "sources", help="write the data plan (sources.json) that ExampleGen reads, e.g. for Kubeflow/Vertex runs",
        description="Resolve the data flags into a sources.json plan under --to/sources-<fingerprint>/ (with --span "
                    "auto: --to/span-<N>/, a new N only when the data changed) and print "
                    "that folder: pass it as --input-base to `kfp run` / `vertex run`. Paths in the plan must be "
                    "readable where the pipeline runs (gs://... for a cluster).")
    add_flags(plan, data_only=True)
    plan.add_argument("--to", metavar="DIR", required=True, help="folder (local or gs://) for the plan")
    plan.add_argument("--span", choices=("auto",),
                      help="auto: data versions; write DIR/span-<N+1>/sources.json only when no span under DIR "
                           "holds this data already (new, changed or removed images), and print the span in use")
    plan.set_defaults(func=_cmd_sources)

    served = sub.add_parser(
        "served", help="which data produced the model being served: span, data fingerprint, examples, classes",
        description="Print, as JSON, the newest pushed version under --output/serving_model (or --serving-dir, "
                    "e.g. gs://BUCKET/simsiam/serving_model of a cluster run) and what produced it: the data span, "
                    "its content fingerprint, examples per split, class names, and the retraining policy.")
    served.add_argument("--output", metavar="DIR", default="outputs", help="the run's --output folder")
    served.add_argument("--serving-dir", metavar="DIR", help="the push destination (default: <output>/serving_model)")
    served.set_defaults(func=_cmd_served)

    bench = sub.add_parser(
        "bench", help="measure training, input-pipeline and end-to-end throughput; prints one JSON object",
        description="Throughput in images (= pairs of views) per second of the SimSiam train step on in-memory "
                    "tensors, of the Trainer's input pipeline alone (TFRecords -> decode -> two augmented views "
                    "-> batch), and of both together as the Trainer runs them.")
    bench.add_argument("--backbone", choices=BACKBONES, default="resnet18")
    bench.add_argument("--width", type=int, default=16)
    bench.add_argument("--image-size", type=int, default=32)
    bench.add_argument("--batch-size", type=int, default=256)
    bench.add_argument("--precision", choices=[p for p in PRECISIONS if p != "auto"], default="fp32",
                       help="bf16 = Keras mixed_bfloat16, fp16 = mixed_float16 with loss scaling (loss and normalisation "
                            "stay float32)")
    bench.add_argument("--xla", action="store_true", help="compile the train step with XLA")
    bench.add_argument("--augment", choices=AUGMENT_PRESETS, default="strong-colour")
    bench.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    bench.set_defaults(func=_cmd_bench)
    for entry_point in importlib.metadata.entry_points(group=COMMANDS_ENTRY_POINTS):
        entry_point.load()(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command != "run" and not getattr(args, "verbose", False):  # `run` has its quiet console
        console.import_tensorflow_quietly()
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"simsiam-tfx: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simsiam-tfx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
