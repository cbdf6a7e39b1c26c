"""The `simsiam-tfx` command line."""
from __future__ import annotations

import argparse
import json
import os
import sys

from pipeline.config import (AUGMENT_PRESETS, BACKBONES, DATASETS, PRECISIONS, ConfigError, PipelineConfig,
                             require)


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    d = PipelineConfig()
    parser.add_argument("--output", metavar="DIR", help=f"output directory (default: {d.output_dir})")
    _add_data_flags(parser)
    parser.add_argument("--augment", choices=AUGMENT_PRESETS,
                        help="augmentation preset (default: strong-colour for shapes, mild for digits, cifar up to "
                             "96 px and imagenet above for photos)")
    parser.add_argument("--epochs", type=int, help=f"pre-training epochs (default: {d.pretrain.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"pre-training batch size (default: {d.pretrain.batch_size})")
    parser.add_argument("--backbone", choices=BACKBONES, help=f"encoder (default: {d.pretrain.backbone})")
    parser.add_argument("--width", type=int, help=f"channels of the first ResNet stage (default: {d.pretrain.width})")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="pre-training precision: bf16 = Keras mixed_bfloat16, fp16 = mixed_float16 with dynamic "
                             "loss scaling (default: fp32)")
    parser.add_argument("--supervised-epochs", type=int,
                        help="also train a supervised-from-scratch reference (same encoder + linear head) for "
                             "this many epochs on probe_train and report its eval accuracy (default: 0 = off)")
    parser.add_argument("--min-accuracy", type=float,
                        help=f"Evaluator's accuracy floor for blessing (default: {d.eval.min_accuracy})")
    parser.add_argument("--max-regression", type=float,
                        help="largest accuracy drop vs the last blessed model that still blesses (default: 0)")
    parser.add_argument("--no-cache", action="store_true", help="re-run every component even if its inputs are unchanged")


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that decide the data (shared by `run` and `sources`)."""
    d = PipelineConfig().data
    parser.add_argument("--config", metavar="FILE", help="JSON configuration file (flags given here override it)")
    parser.add_argument("--image-size", type=int, help=f"image side in pixels (default: {d.image_size})")
    parser.add_argument("--seed", type=int, help="seed for data generation and training (default: 0)")
    data = parser.add_argument_group("data sources")
    data.add_argument("--dataset", choices=DATASETS,
                      help=f"named data set: embedded (offline) or TFDS (default: {d.dataset})")
    data.add_argument("--tfds-data-dir", metavar="DIR", help="where prepared TFDS data sets are (local or gs://)")
    data.add_argument("--tfds-download", action="store_true",
                      help="download and prepare a missing TFDS data set (needs internet)")
    data.add_argument("--images", metavar="DIR",
                      help="labelled images, one sub-folder per class; pre-training, probe and evaluation "
                           "(fixed hash split)")
    data.add_argument("--tfrecords", metavar="PATTERN",
                      help="TFRecords of tf.train.Example with an encoded image and an int64 label")
    data.add_argument("--image-key", help=f"image feature of --tfrecords (default: {d.image_key})")
    data.add_argument("--label-key", help=f"label feature of --tfrecords (default: {d.label_key})")
    data.add_argument("--pretrain-images", metavar="DIR",
                      help="unlabelled images (any folder tree) for pre-training only")
    data.add_argument("--probe-dataset", choices=DATASETS, help="a separate labelled data set for probe and evaluation")
    data.add_argument("--probe-images", metavar="DIR", help="a separate labelled class-folder tree for probe and evaluation")
    data.add_argument("--eval-fraction", type=float,
                      help=f"share of a single labelled source held out for evaluation (default: {d.eval_fraction})")
    data.add_argument("--schema", metavar="FILE",
                      help="curated schema.pbtxt (ImportSchemaGen); anomalies against it stop the run")


_DATA_FLAGS = ("dataset", "tfds_data_dir", "images", "tfrecords", "image_key", "label_key", "pretrain_images",
               "probe_dataset", "probe_images", "eval_fraction", "schema")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The configuration the flags of `run` or `sources` describe (flags a command lacks stay as they are)."""
    config = PipelineConfig.from_json_file(args.config) if args.config else PipelineConfig()
    flags = {
        ("output_dir",): "output", ("data", "image_size"): "image_size", ("data", "augment"): "augment",
        ("pretrain", "epochs"): "epochs", ("pretrain", "batch_size"): "batch_size",
        ("pretrain", "backbone"): "backbone", ("pretrain", "width"): "width", ("pretrain", "precision"): "precision",
        ("eval", "min_accuracy"): "min_accuracy", ("probe", "supervised_epochs"): "supervised_epochs",
        ("eval", "max_regression"): "max_regression", ("data", "seed"): "seed", ("pretrain", "seed"): "seed",
    }
    flags.update({("data", name): name for name in _DATA_FLAGS})
    for path, flag in flags.items():
        value = getattr(args, flag, None)
        if value is not None:
            target = config
            for part in path[:-1]:
                target = getattr(target, part)
            setattr(target, path[-1], value)
    for name in ("tfds_data_dir", "images", "tfrecords", "pretrain_images", "probe_images", "schema"):
        value = getattr(config.data, name)
        if value and "://" not in value:  # the plan is read from elsewhere: make local paths absolute
            setattr(config.data, name, os.path.abspath(os.path.expanduser(value)))
    if args.tfds_download:
        config.data.tfds_download = True
    if getattr(args, "no_cache", False):
        config.enable_cache = False
    config.output_dir = os.path.abspath(config.output_dir)
    return config.validate()


def _cmd_run(args) -> int:
    config = config_from_args(args)
    if os.path.exists(config.output_dir) and not os.access(config.output_dir, os.W_OK):
        raise ConfigError(f"output directory {config.output_dir} is not writable")
    from components.anomalies_gate import SchemaAnomalies
    from pipeline import summary
    from pipeline.local_runner import run_local
    try:
        result = run_local(config)
    except SchemaAnomalies as e:
        print(f"simsiam-tfx: error: {e}", file=sys.stderr)
        return 1
    print()
    print(summary.describe(result))
    print(f"  summary: {config.summary_path}")
    return 0


def _cmd_sources(args) -> int:
    from components import sources
    config = config_from_args(args)
    plan = sources.plan(config.data, args.to)
    folder = sources.write_plan(plan, args.to)
    print(json.dumps({"input_base": folder, "num_classes": plan.num_classes, **sources.summary(plan)},
                     indent=2, ensure_ascii=False))
    return 0


def _cmd_bench(args) -> int:

    import trainer  # noqa: F401  (Keras mode)
    from trainer import bench
    require(args.width >= 1, f"--width must be >= 1, got {args.width}")
    require(16 <= args.image_size <= 512, f"--image-size must be in [16, 512], got {args.image_size}")
    require(args.batch_size >= 2, f"--batch-size must be >= 2, got {args.batch_size}")
    require(args.steps >= 1 and args.warmup >= 0, "--steps must be >= 1 and --warmup >= 0")
    result = bench.run(backbone=args.backbone, width=args.width, image_size=args.image_size,
                       batch_size=args.batch_size, precision=args.precision, xla=args.xla, steps=args.steps,
                       warmup=args.warmup, augment_preset=args.augment)
    print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simsiam-tfx",
        description="SimSiam self-supervised pre-training as a TFX pipeline: ExampleGen -> statistics/schema/"
                    "validation -> Transform -> SimSiam pre-training -> linear probe -> gated Evaluator -> Pusher.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the whole pipeline locally (LocalDagRunner)",
                         description="Run the whole pipeline locally with LocalDagRunner. Writes TFX artifacts, "
                                     "the MLMD store, the pushed model and run_summary.json under --output.")
    _add_run_flags(run)
    run.set_defaults(func=_cmd_run)

    plan = sub.add_parser(
        "sources", help="write the data plan (sources.json) that ExampleGen reads, e.g. for Kubeflow/Vertex runs",
        description="Resolve the data flags into a sources.json plan under --to/sources-<fingerprint>/ and print "
                    "that folder: pass it as --input-base to `kfp run` / `vertex run`. Paths in the plan must be "
                    "readable where the pipeline runs (gs://... for a cluster).")
    _add_data_flags(plan)
    plan.add_argument("--to", metavar="DIR", required=True, help="folder (local or gs://) for the plan")
    plan.set_defaults(func=_cmd_sources)

    bench = sub.add_parser(
        "bench", help="measure training, input-pipeline and end-to-end throughput; prints one JSON object",
        description="Throughput in images (= pairs of views) per second of the SimSiam train step on in-memory "
                    "tensors, of the Trainer's input pipeline alone (TFRecords -> decode -> two augmented views "
                    "-> batch), and of both together as the Trainer runs them.")
    bench.add_argument("--backbone", choices=BACKBONES, default="resnet18")
    bench.add_argument("--width", type=int, default=16)
    bench.add_argument("--image-size", type=int, default=32)
    bench.add_argument("--batch-size", type=int, default=256)
    bench.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="bf16 = Keras mixed_bfloat16, fp16 = mixed_float16 with loss scaling (loss and normalisation "
                            "stay float32)")
    bench.add_argument("--xla", action="store_true", help="compile the train step with XLA")
    bench.add_argument("--augment", choices=AUGMENT_PRESETS, default="strong-colour")
    bench.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    bench.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    bench.set_defaults(func=_cmd_bench)
    from kubeflow import commands as kubeflow_commands
    kubeflow_commands.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
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
