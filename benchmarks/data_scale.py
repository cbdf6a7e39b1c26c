"""Do the data stages stream? Peak memory and bytes per example for growing image folders.

    python -m benchmarks.data_scale                 # 2,000 and 20,000 images (about 10 min on 2 cores)
    python -m benchmarks.data_scale --counts 500 5000

For each count, a folder of small labelled noise PNGs is generated (`write_noise_folder`), and the data
half of the pipeline (ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator ->
StopOnAnomalies -> Transform, as in pipeline/pipeline.py) runs in a fresh process with the
default in-process Beam settings. Printed per count, one JSON line: peak resident memory of that
process, wall time, and bytes per example in the source files, after ExampleGen, after Transform,
and what float32 pixels would take.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _bytes_per_example(pattern: str, count: int) -> float:
    return round(sum(os.path.getsize(p) for p in glob.glob(pattern, recursive=True)) / count, 1)


def run_data_stages(images: str, work: str, image_size: int, stages: int = 6) -> dict:
    # isort: off
    from simsiam_tfx.components import source_plan  # first: sets the Keras mode before TensorFlow loads
    from simsiam_tfx.config import PipelineConfig
    from simsiam_tfx.pipeline.pipeline import data_stages

    import tensorflow as tf
    from tfx import v1 as tfx
    # isort: on

    config = PipelineConfig(output_dir=work)
    config.data.images, config.data.image_size = images, image_size
    plan = source_plan.plan(config.data, config.data_root)
    input_base = source_plan.write_plan(plan, config.data_root)
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="data-scale", pipeline_root=config.pipeline_root,
        components=data_stages(config, input_base).components()[:stages], enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            config.metadata_path),
        beam_pipeline_args=list(config.beam_pipeline_args))
    start = time.perf_counter()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"seconds": round(seconds, 1), "peak_rss_mib": round(peak, 1)}
    for stage, pattern in (("examplegen", "ExampleGen/examples/*/Split-*/*"),
                           ("transform", "Transform/transformed_examples/*/Split-*/*")):
        files = glob.glob(os.path.join(config.pipeline_root, pattern))
        if not files:
            continue
        records = sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))
        result[f"{stage}_records"] = records
        result[f"{stage}_bytes_per_example"] = round(sum(os.path.getsize(f) for f in files) / records, 1)
    return result


def write_noise_folder(root: str, count: int, classes: int, size: int) -> None:
    """`count` PNGs of uniform noise (the least compressible images) in `classes` class folders."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(root, f"class{i % classes}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(os.path.join(folder, f"img{i:06d}.png"))


def measure(count: int, image_size: int, keep: bool, stages: int = 6) -> dict:
    work = tempfile.mkdtemp(prefix=f"data-scale-{count}-")
    images = os.path.join(work, "images")
    write_noise_folder(images, count, classes=10, size=image_size)
    # A fresh interpreter per count: ru_maxrss is a high-water mark of the whole process.
    done = subprocess.run([sys.executable, "-m", "benchmarks.data_scale", "--child", images, os.path.join(work, "out"),
                           str(image_size), str(stages)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update({
        "images": count,
        "image_size": image_size,
        "stages": stages,
        "source_bytes_per_example": _bytes_per_example(os.path.join(images, "**", "*.png"), count),
        "float32_bytes_per_example": image_size * image_size * 3 * 4,
    })
    if not keep:
        subprocess.run(["rm", "-rf", work], check=False)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="keep the generated folders and outputs")
    parser.add_argument("--stages", type=int, default=6,
                        help="run only the first N data stages (1 = ExampleGen ... 6 = up to Transform)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        images, work, size, stages = args.child
        print(json.dumps(run_data_stages(images, work, int(size), int(stages))))
        return 0
    for count in args.counts:
        print(json.dumps(measure(count, args.image_size, args.keep, args.stages)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
