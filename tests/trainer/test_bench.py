import json

from simsiam_tfx.pipeline import cli

KEYS = {"train_images_per_second", "input_images_per_second", "end_to_end_images_per_second",
        "backbone", "width", "image_size", "batch_size", "precision", "device"}


def test_bench_prints_one_json_object_with_the_contracted_keys(capsys):
    assert cli.main(["bench", "--width", "2", "--image-size", "16", "--batch-size", "8", "--steps", "2",
                     "--warmup", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert KEYS <= set(result)
    assert (result["backbone"], result["width"], result["image_size"], result["batch_size"], result["precision"]) == (
        "resnet18", 2, 16, 8, "fp32")
    for key in ("train_images_per_second", "input_images_per_second", "end_to_end_images_per_second",
                "train_gflops_per_second", "matmul_peak_gflops", "share_of_matmul_peak"):
        assert result[key] > 0


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


def test_bench_runs_in_bfloat16(capsys):
    assert cli.main(["bench", "--width", "2", "--image-size", "16", "--batch-size", "8", "--steps", "1",
                     "--warmup", "1", "--precision", "bf16"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["precision"] == "bf16" and result["train_images_per_second"] > 0


def test_bench_rejects_bad_values_in_one_line(capsys):
    assert cli.main(["bench", "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip().startswith("simsiam-tfx: error: --steps")
