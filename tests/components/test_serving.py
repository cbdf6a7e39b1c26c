"""The served signatures: bounded decoding, one status per image, an empty batch."""
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from simsiam_tfx.components import preprocessing, serving
from simsiam_tfx.trainer import backbones, data, probe
from tests.data_factory import encode_array as encode

SIZE = 8


def png_bomb(side: int) -> bytes:
    """A valid grey PNG of side x side zero pixels: a few hundred KB that decode to side² bytes."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    # A Transform graph as the pipeline's Transform writes it (the optional seed among its inputs).
    data.write_transform_graph(str(root / "transform"), preprocessing.policy_config("cifar"), SIZE, "cifar",
                               temp_dir=str(root / "tmp"))
    encoder = backbones.build_encoder("resnet18", SIZE, width=2)
    dims = encoder.output_shape[-1]
    rng = np.random.default_rng(0)
    classifier = probe.build_classifier(encoder, rng.normal(size=(dims, 2)).astype(np.float32), np.zeros(2, np.float32))
    path = str(root / "model")
    serving.save_serving_model(classifier, tft.TFTransformOutput(str(root / "transform")), SIZE, path,
                               class_names=["a", "b"])
    return path


def test_each_image_gets_its_own_status_and_refused_ones_are_not_decoded(served):
    model = tf.saved_model.load(served)
    good_png = encode(np.full((20, 30, 3), 200, np.uint8), "PNG")
    good_jpeg = encode(np.full((30, 20, 3), 50, np.uint8), "JPEG")
    batch = [good_png, b"garbage that is no image", png_bomb(7000), good_jpeg, b""]
    out = model.signatures["serve_image_bytes"](image_bytes=tf.constant(batch))
    status = [s.decode() for s in out["status"].numpy()]
    assert status == ["ok", serving.STATUS[1], serving.STATUS[2], "ok", serving.STATUS[1]]
    assert out["class_id"].numpy().tolist()[1:3] == [-1, -1] and out["class_name"].numpy()[2] == b""
    np.testing.assert_allclose(out["probabilities"].numpy()[[0, 3]].sum(axis=1), 1.0, atol=1e-5)
    assert not out["probabilities"].numpy()[[1, 2, 4]].any()
    # The accepted images are answered exactly as when sent alone.
    alone = model.signatures["serve_image_bytes"](image_bytes=tf.constant([good_jpeg]))
    np.testing.assert_allclose(out["embedding"].numpy()[3], alone["embedding"].numpy()[0], atol=1e-5)
    example = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png_bomb(7000)]))})).SerializeToString()
    by_example = model.signatures["serving_default"](examples=tf.constant([example]))
    assert by_example["status"].numpy()[0].decode() == serving.STATUS[2]


@pytest.mark.fault
def test_examples_that_do_not_parse_and_corrupt_jpeg_headers_get_a_status_not_an_error(served):
    """Garbage (non-UTF-8 bytes included: TensorFlow's Python error text could not even be decoded)
    is answered per request, in both signatures; the good image beside it as when sent alone."""
    model = tf.saved_model.load(served)
    good_png = encode(np.full((20, 30, 3), 200, np.uint8), "PNG")

    def example(feature):
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    good = example({"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[good_png]))})
    no_image = example({"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))})
    batch = [b"not a tf.Example", good, b"\xff\xfe\x00\x81 not a tf.Example", no_image, b""]
    out = model.signatures["serving_default"](examples=tf.constant(batch))
    status = [s.decode() for s in out["status"].numpy()]
    assert status == [serving.STATUS[3], "ok", serving.STATUS[3], serving.STATUS[3], serving.STATUS[3]]  # b"": no image
    assert out["class_id"].numpy().tolist() == [-1, out["class_id"].numpy()[1], -1, -1, -1]
    alone = model.signatures["serve_image_bytes"](image_bytes=tf.constant([good_png]))
    np.testing.assert_allclose(out["embedding"].numpy()[1], alone["embedding"].numpy()[0], atol=1e-5)
    # A JPEG whose header does not parse (ExtractJpegShape raises) is refused, not the batch.
    corrupt_jpeg = b"\xff\xd8\xff\xe0" + b"\x00\x10garbage" * 3
    out = model.signatures["serve_image_bytes"](image_bytes=tf.constant([corrupt_jpeg, good_png]))
    assert [s.decode() for s in out["status"].numpy()] == [serving.STATUS[1], "ok"]
    all_bad = model.signatures["serving_default"](examples=tf.constant([b"\xff"]))
    assert [s.decode() for s in all_bad["status"].numpy()] == [serving.STATUS[3]]


def test_an_empty_batch_gets_an_empty_answer(served):
    model = tf.saved_model.load(served)
    out = model.signatures["serve_image_bytes"](image_bytes=tf.constant([], tf.string))
    assert {k: v.shape[0] for k, v in out.items()} == {k: 0 for k in out}
    assert out["probabilities"].shape == (0, 2)


@pytest.mark.fault
def test_a_png_bomb_costs_a_request_almost_no_memory(served):
    """In a fresh process: peak memory with the bomb in the request, against a plain request."""
    script = f"""
import json, resource, sys, tensorflow as tf
sys.path.insert(0, {os.getcwd()!r})
from tests.components.test_serving import png_bomb
from tests.data_factory import encode_array
import numpy as np
model = tf.saved_model.load({served!r})
serve = model.signatures["serve_image_bytes"]
serve(image_bytes=tf.constant([encode_array(np.zeros((8, 8, 3), np.uint8), "PNG")]))
bomb = png_bomb(20000)  # 400 MP: 1.2 GB as decoded RGB
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = serve(image_bytes=tf.constant([bomb] * 4))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"kb": after - before, "status": [s.decode() for s in out["status"].numpy()], "size": len(bomb)}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["size"] < 1_000_000 and result["status"] == [serving.STATUS[2]] * 4
    assert result["kb"] < 100 * 1024, result  # decoding even one would take 1.2 GB
