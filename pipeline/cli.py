"""The `simsiam-tfx` command line."""
from __future__ import annotations

import argparse
import os
import sys

from pipeline.config import (AUGMENT_PRESETS, BACKBONES, EMBEDDED_DATASETS, PRECISIONS, ConfigError,
                             PipelineConfig, require)


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    d = PipelineConfig()
    parser.add_argument("--config", metavar="FILE", help="JSON configuration file (flags given here override it)")
    parser.add_argument("--output", metavar="DIR", help=f"output directory (default: {d.output_dir})")
    parser.add_argument("--dataset", choices=EMBEDDED_DATASETS, help=f"data set (default: {d.data.dataset})")
    parser.add_argument("--image-size", type=int, help=f"image side in pixels (default: {d.data.image_size})")
    parser.add_argument("--augment", choices=AUGMENT_PRESETS,
                        help="augmentation preset (default: cifar for shapes, mild for digits)")
    parser.add_argument("--epochs", type=int, help=f"pre-training epochs (default: {d.pretrain.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"pre-training batch size (default: {d.pretrain.batch_size})")
    parser.add_argument("--backbone", choices=BACKBONES, help=f"encoder (default: {d.pretrain.backbone})")
    parser.add_argument("--width", type=int, help=f"channels of the first ResNet stage (default: {d.pretrain.width})")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="pre-training precision: bf16 = Keras mixed_bfloat16 (default: fp32)")
    parser.add_argument("--min-accuracy", type=float,
                        help=f"Evaluator's accuracy floor for blessing (default: {d.eval.min_accuracy})")
    parser.add_argument("--max-regression", type=float,
                        help="largest accuracy drop vs the last blessed model that still blesses (default: 0)")
    parser.add_argument("--seed", type=int, help="seed for data generation and training (default: 0)")
    parser.add_argument("--no-cache", action="store_true", help="re-run every component even if its inputs are unchanged")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    config = PipelineConfig.from_json_file(args.config) if args.config else PipelineConfig()
    overrides = {
        ("output_dir",): args.output, ("data", "dataset"): args.dataset, ("data", "image_size"): args.image_size,
        ("data", "augment"): args.augment, ("pretrain", "epochs"): args.epochs,
        ("pretrain", "batch_size"): args.batch_size, ("pretrain", "backbone"): args.backbone,
        ("pretrain", "width"): args.width, ("pretrain", "precision"): args.precision,
        ("eval", "min_accuracy"): args.min_accuracy,
        ("eval", "max_regression"): args.max_regression, ("data", "seed"): args.seed,
        ("pretrain", "seed"): args.seed,
    }
    for path, value in overrides.items():
        if value is not None:
            target = config
            for part in path[:-1]:
                target = getattr(target, part)
            setattr(target, path[-1], value)
    if args.no_cache:
        config.enable_cache = False
    config.output_dir = os.path.abspath(config.output_dir)
    return config.validate()


def _cmd_run(args) -> int:
    config = config_from_args(args)
    if os.path.exists(config.output_dir) and not os.access(config.output_dir, os.W_OK):
        raise ConfigError(f"output directory {config.output_dir} is not writable")
    from pipeline import summary
    from pipeline.local_runner import run_local
    result = run_local(config)
    print()
    print(summary.describe(result))
    print(f"  summary: {config.summary_path}")
    return 0


def _cmd_bench(args) -> int:
    import json

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
                       help="bf16 = Keras mixed_bfloat16 (loss and normalisation stay float32)")
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
