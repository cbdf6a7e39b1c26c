import json

import pytest
import tf_keras as keras

from simsiam_tfx.pipeline import cli

KEYS = {"train_images_per_second", "input_images_per_second", "end_to_end_images_per_second",
        "backbone", "width", "image_size", "batch_size", "precision", "device"}


def test_bench_prints_one_json_object_with_the_contracted_keys(capsys):
    # In bf16, whose policy is set for the measurement and restored after it (fp32 steps: the flop
    # count below).
    assert cli.main(["bench", "--width", "2", "--image-size", "16", "--batch-size", "8", "--steps", "2",
                     "--warmup", "1", "--precision", "bf16"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert KEYS <= set(result)
    assert (result["backbone"], result["width"], result["image_size"], result["batch_size"], result["precision"]) == (
        "resnet18", 2, 16, 8, "bf16")
    assert keras.mixed_precision.global_policy().name == "float32"
    for key in ("train_images_per_second", "input_images_per_second", "end_to_end_images_per_second",
                "train_mflop_per_image", "matmul_peak_gflops"):
        assert result[key] > 0
    # (a step this small uses a thousandth of the peak or less: rounded, it can read 0)
    rate = result["train_mflop_per_image"] * result["train_images_per_second"] / 1e3
    assert result["train_gflops_per_second"] == pytest.approx(rate, rel=0.05, abs=0.1)
    assert result["share_of_matmul_peak"] == pytest.approx(rate / result["matmul_peak_gflops"], abs=1e-3)


def test_the_step_flops_are_counted_in_the_graph():
    """A product of (m x k) and (k x n) is 2mkn operations; the train step counts more when the
    encoder is wider (its work grows with the width squared)."""
    import tensorflow as tf

    from simsiam_tfx.trainer.bench import step_flops
    from simsiam_tfx.trainer.pretrain import build_simsiam
    product = tf.function(lambda a, b: tf.matmul(a, b))
    assert step_flops(product, tf.zeros((8, 16)), tf.zeros((16, 4))) == 2 * 8 * 16 * 4
    views = tuple(tf.zeros((4, 16, 16, 3)) for _ in range(2))
    counts = [step_flops(tf.function(build_simsiam("resnet18", w, 16, 16 * w, 5e-4, 0.05).train_step), views)
              for w in (2, 4)]
    assert 3 < counts[1] / counts[0] < 4.5


def test_bench_measures_fp32_unless_told():
    assert cli.build_parser().parse_args(["bench"]).precision == "fp32"


def test_bench_rejects_bad_values_in_one_line(capsys):
    assert cli.main(["bench", "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip().startswith("simsiam-tfx: error: --steps")
