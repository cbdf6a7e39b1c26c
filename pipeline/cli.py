"""The `simsiam-tfx` command line."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys

from simsiam_tfx.config import AUGMENT_PRESETS, BACKBONES, PRECISIONS, ConfigError, require
from simsiam_tfx.pipeline.flags import add_flags, config_from_args

# Other packages (ours: simsiam_tfx.kubeflow) add commands through this entry-point group, so this
# CLI never imports the deployment layer above it.
COMMANDS_ENTRY_POINTS = "simsiam_tfx.commands"


def _cmd_run(args) -> int:
    config = config_from_args(args)
    from simsiam_tfx.components.anomalies_gate import SchemaAnomalies
    from simsiam_tfx.pipeline import run_lock, summary
    from simsiam_tfx.pipeline.local_runner import run_local
    with run_lock.exclusive_output(config.output_dir):
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
            if isinstance(e, SchemaAnomalies):
                print(f"simsiam-tfx: error: {e}", file=sys.stderr)
                return 1
            raise
    print()
    print(summary.describe(result))
    print(f"  summary: {config.summary_path}")
    return 0


def _cmd_sources(args) -> int:
    from simsiam_tfx.components import sources
    config = config_from_args(args)
    plan = sources.plan(config.data, args.to)
    folder = sources.write_plan(plan, args.to)
    print(json.dumps({"input_base": folder, "num_classes": plan.num_classes, **sources.summary(plan)},
                     indent=2, ensure_ascii=False))
    return 0


def _cmd_bench(args) -> int:
    from simsiam_tfx.trainer import bench
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
    run.set_defaults(func=_cmd_run)

    plan = sub.add_parser(
        "sources", help="write the data plan (sources.json) that ExampleGen reads, e.g. for Kubeflow/Vertex runs",
        description="Resolve the data flags into a sources.json plan under --to/sources-<fingerprint>/ and print "
                    "that folder: pass it as --input-base to `kfp run` / `vertex run`. Paths in the plan must be "
                    "readable where the pipeline runs (gs://... for a cluster).")
    add_flags(plan, data_only=True)
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
    for entry_point in importlib.metadata.entry_points(group=COMMANDS_ENTRY_POINTS):
        entry_point.load()(sub)
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
