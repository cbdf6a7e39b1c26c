"""Tests of simsiam_tfx.pipeline.inference (`embed`, `predict`) on a small stand-in served model."""
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from simsiam_tfx.pipeline import inference
from simsiam_tfx.pipeline.cli import main
from simsiam_tfx.trainer.data import decode_and_resize
from tests import data_factory

CLASS_NAMES = ["dark", "bright"]


def save_served_model(path: str, size: int = 8) -> str:
    """A SavedModel with the pushed model's `serve_image_bytes` outputs: embedding = the image's
    mean colour, class 'bright' when its mean is above 0.5."""
    class Served(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            images = tf.map_fn(lambda b: tf.cast(decode_and_resize(b, size), tf.float32) / 255.0, image_bytes,
                               fn_output_signature=tf.TensorSpec((size, size, 3), tf.float32))
            embedding = tf.reduce_mean(images, axis=[1, 2])
            bright = tf.reduce_mean(embedding, axis=1, keepdims=True)
            probabilities = tf.concat([1.0 - bright, bright], axis=1)
            class_id = tf.argmax(probabilities, axis=1)
            return {"probabilities": probabilities, "class_id": class_id,
                    "class_name": tf.gather(tf.constant(CLASS_NAMES), class_id), "embedding": embedding}

    module = Served()
    tf.saved_model.save(module, path, signatures={"serve_image_bytes": module.serve})
    return path


def image_bytes(value: int, fmt: str = "PNG", shape=(20, 30, 3)) -> bytes:
    return data_factory.encode_array(np.full(shape, value, np.uint8), fmt)


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
    return save_served_model(str(tmp_path_factory.mktemp("model") / "1700000000"))


@pytest.fixture
def folder_with_bad_files(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    (folder / "a_dark.png").write_bytes(image_bytes(10))
    (folder / "b_bright.jpg").write_bytes(image_bytes(240, "JPEG"))
    (folder / "sub" / "c_bright.gif").write_bytes(image_bytes(250, "GIF"))
    (folder / "d_gray.png").write_bytes(data_factory.encode_array(np.full((9, 9), 5, np.uint8), "PNG"))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    (folder / "truncated.png").write_bytes(image_bytes(100)[:40])
    return folder


GOOD = ["a_dark.png", "b_bright.jpg", "d_gray.png", os.path.join("sub", "c_bright.gif")]


def test_embed_skips_bad_files_by_name_and_streams_npy(served_model, folder_with_bad_files, tmp_path, capsys):
    out = tmp_path / "emb.npy"
    assert main(["embed", str(folder_with_bad_files), "--model", served_model, "--to", str(out),
                 "--batch-size", "3", "--verbose"]) == 0
    embeddings = np.load(out)
    names = open(inference.files_list_path(str(out))).read().splitlines()
    assert sorted(os.path.relpath(n, folder_with_bad_files) for n in names) == sorted(GOOD)
    assert embeddings.shape == (4, 3) and embeddings.dtype == np.float32
    by_name = dict(zip((os.path.basename(n) for n in names), embeddings))
    assert by_name["a_dark.png"] == pytest.approx([10 / 255] * 3, abs=1e-3)
    assert by_name["d_gray.png"] == pytest.approx([5 / 255] * 3, abs=1e-3)  # grayscale -> RGB
    err = capsys.readouterr()
    for bad, reason in (("empty.jpg", "empty file"), ("notes.txt", "not an image"),
                        ("truncated.png", "truncated or corrupt")):
        assert f"skipped {folder_with_bad_files / bad}: {reason}" in err.err
    assert "embed: 4 images" in err.out and "skipped 3" in err.out


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_embed_to_csv_and_parquet_keeps_names_with_rows(served_model, folder_with_bad_files, tmp_path, suffix):
    out = tmp_path / f"emb.{suffix}"
    result = inference.run(str(folder_with_bad_files), served_model, str(out), 2, predict=False)
    assert result["written"] == 4 and result["skipped"] == 3
    if suffix == "csv":
        rows = [line.split(",") for line in out.read_text().splitlines()]
        assert rows[0] == ["file", "e0", "e1", "e2"]
        table = {os.path.basename(r[0]): [float(v) for v in r[1:]] for r in rows[1:]}
    else:
        data = pq.read_table(out).to_pydict()
        table = {os.path.basename(f): e for f, e in zip(data["file"], data["embedding"])}
    assert set(table) == {os.path.basename(g) for g in GOOD}
    assert table["b_bright.jpg"][0] > 0.85


def test_predict_writes_class_name_id_and_probability(served_model, folder_with_bad_files, tmp_path):
    out = tmp_path / "pred.jsonl"
    inference.run(str(folder_with_bad_files), served_model, str(out), 64, predict=True)
    rows = {os.path.basename(r["file"]): r for r in map(json.loads, out.read_text().splitlines())}
    assert set(rows) == {os.path.basename(g) for g in GOOD}
    assert rows["a_dark.png"]["class_name"] == "dark" and rows["a_dark.png"]["class_id"] == 0
    assert rows["c_bright.gif"]["class_name"] == "bright" and rows["c_bright.gif"]["probability"] > 0.9
    csv_out = tmp_path / "pred.csv"
    inference.run(str(folder_with_bad_files / "*.png"), served_model, str(csv_out), 64, predict=True)
    assert csv_out.read_text().splitlines()[0] == "file,class_name,class_id,probability"
    assert len(csv_out.read_text().splitlines()) == 1 + 2  # the glob's two readable PNGs


def test_tfrecord_input_and_newest_pushed_model_by_default(served_model, tmp_path):
    records = tmp_path / "images.tfrecord.gz"
    with tf.io.TFRecordWriter(str(records), options="GZIP") as writer:
        for value in (image_bytes(0), b"garbage", image_bytes(255)):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))})).SerializeToString())
    output = tmp_path / "outputs"
    older = output / "serving_model" / "1600000000"
    older.mkdir(parents=True)
    (older / "saved_model.pb").write_bytes(b"")  # an older push the default must not pick
    os.symlink(served_model, output / "serving_model" / "1700000000")
    assert inference.newest_pushed_model(str(output)).endswith("1700000000")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(records), "--output", str(output), "--to", str(out), "--verbose"]) == 0
    lines = out.read_text().splitlines()[1:]
    assert [line.split(",")[:3] for line in lines] == [[f"{records}#0", "dark", "0"], [f"{records}#2", "bright", "1"]]


def test_user_mistakes_are_one_line_errors(served_model, tmp_path, capsys):
    assert main(["embed", str(tmp_path), "--model", served_model, "--to", str(tmp_path / "x.txt")]) == 2
    assert "must end in .npy, .parquet, .csv" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--output", str(tmp_path / "none"), "--to", str(tmp_path / "p.csv")]) == 2
    assert "no pushed model under" in capsys.readouterr().err
    assert main(["embed", str(tmp_path / "missing*"), "--model", served_model, "--to", str(tmp_path / "e.npy"),
                 "--verbose"]) == 2
    assert "no such folder, file or glob match" in capsys.readouterr().err
    assert main(["embed", str(tmp_path), "--model", str(tmp_path), "--to", str(tmp_path / "e.npy")]) == 2
    assert "is not a SavedModel" in capsys.readouterr().err


_RSS_SCRIPT = """
import resource, sys
from simsiam_tfx.pipeline import inference
result = inference.run(sys.argv[1], sys.argv[2], sys.argv[3], 64, predict=sys.argv[4] == "predict")
current = next(line for line in open("/proc/self/status") if line.startswith("VmRSS:")).split()[1]
print(result["written"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, current)
"""


def _rss_mb(images: str, model: str, out: str, command: str) -> tuple[int, float, float]:
    """(images written, peak RSS, RSS at the end) of one run in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, images, model, out, command], capture_output=True,
                          text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    written, peak_kib, end_kib = done.stdout.split()[-3:]
    return int(written), int(peak_kib) / 1024, int(end_kib) / 1024


SMALL, LARGE = 500, 2500


@pytest.mark.slow
def test_memory_stays_flat_over_thousands_of_images(served_model, tmp_path):
    """Peak RSS with 2,500 images stays within a few MB of that with 500: nothing accumulates per
    image (the 2,000 more decoded would take 2,000 x 64 x 64 x 3 x 4 bytes = 98 MB, about twice
    the margin)."""
    rng = np.random.default_rng(0)
    small, large = tmp_path / "small", tmp_path / "large"
    for folder in (small, large):
        folder.mkdir()
    for i in range(LARGE):
        data = data_factory.encode_array(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), "PNG")
        (large / f"{i:05d}.png").write_bytes(data)
        if i < SMALL:
            (small / f"{i:05d}.png").write_bytes(data)
    measured = {}
    for command, suffix in (("embed", "npy"), ("predict", "csv")):
        n_small, peak_small, end_small = _rss_mb(str(small), served_model, str(tmp_path / f"s.{suffix}"), command)
        n_large, peak_large, end_large = _rss_mb(str(large), served_model, str(tmp_path / f"l.{suffix}"), command)
        assert (n_small, n_large) == (SMALL, LARGE)
        measured[command] = {"peak": (peak_small, peak_large), "end": (end_small, end_large)}
        assert peak_large - peak_small < 50 and end_large - end_small < 50, measured
    print(f"RSS MB ({SMALL} -> {LARGE} images): {measured}")
