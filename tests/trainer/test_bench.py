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
    for key in ("train_images_per_second", "input_images_per_second", "end_to_end_images_per_second"):
        assert result[key] > 0


def test_bench_runs_in_bfloat16(capsys):
    assert cli.main(["bench", "--width", "2", "--image-size", "16", "--batch-size", "8", "--steps", "1",
                     "--warmup", "1", "--precision", "bf16"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["precision"] == "bf16" and result["train_images_per_second"] > 0


def test_bench_rejects_bad_values_in_one_line(capsys):
    assert cli.main(["bench", "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip().startswith("simsiam-tfx: error: --steps")
