"""Every awkward kind of file is kept, converted to something TensorFlow decodes, or skipped with why."""
import pytest
import tensorflow as tf

from simsiam_tfx.components import image_check
from tests import data_factory

AWKWARD = data_factory.awkward_files()


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_each_awkward_file_is_kept_converted_or_skipped_with_a_reason(name):
    data, expected = AWKWARD[name]
    image, reason = image_check.check(data)
    if expected.startswith("skip:"):
        assert image is None
        assert reason.startswith(expected[len("skip:"):]), reason
        assert "\n" not in reason
        return
    assert reason == ""
    if expected == "keep":
        assert image == data  # byte for byte: nothing re-encoded needlessly
    else:
        assert image != data and image[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = tf.io.decode_image(image, channels=3, expand_animations=False)  # what Transform runs
    assert decoded.shape[2] == 3 and decoded.dtype == tf.uint8


def test_sixteen_bit_png_is_scaled_not_clipped():
    image, _ = image_check.check(AWKWARD["sixteen-bit.png"][0])
    pixels = tf.io.decode_png(image).numpy()
    assert pixels.max() > 200 and pixels.min() == 0 and len(set(pixels.ravel().tolist())) > 100


def test_animated_gif_keeps_its_first_frame():
    image, _ = image_check.check(AWKWARD["animated.gif"][0])
    assert tf.io.decode_png(image).shape[:2] == (24, 24)


def test_a_10000_pixel_jpeg_is_downscaled_to_the_stored_limit():
    image, reason = image_check.check(data_factory.huge_jpeg(10_000))
    assert reason == ""
    shape = tf.io.decode_png(image).shape
    assert max(shape[:2]) == image_check.MAX_SIDE and shape[0] == shape[1]


def test_an_image_above_the_pixel_limit_is_skipped_without_decoding(monkeypatch):
    monkeypatch.setattr(image_check, "MAX_PIXELS", 1000)
    image, reason = image_check.check(data_factory.encoded((40, 30)))
    assert image is None and reason.startswith("too large (40x30 pixels")


def _sixteen_bit_png(width: int, height: int) -> bytes:
    """A flat 16-bit grayscale PNG: a few KB on disk, width x height x 2 bytes decoded."""
    import io

    import numpy as np
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((height, width), np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


BOMB_CHECK = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GiB for the whole process
from simsiam_tfx.components import image_check
image, reason = image_check.check(open(sys.argv[1], "rb").read())
print("REASON", image is None, reason)
"""


@pytest.mark.fault
def test_a_png_bomb_is_skipped_from_its_header_under_a_1_gib_memory_cap(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "bomb.png"
    path.write_bytes(_sixteen_bit_png(9_000, 9_000))  # 81 MP: 1.3 GB as float64, more while converting
    assert path.stat().st_size < 1 << 20
    done = subprocess.run([sys.executable, "-c", BOMB_CHECK, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "REASON True too large to decode (9000x9000 PNG" in done.stdout


@pytest.mark.parametrize("error", [MemoryError(), NotImplementedError("odd TIFF compression"), KeyError("tag")])
@pytest.mark.fault
def test_whatever_pil_raises_becomes_a_named_skip(monkeypatch, error):
    def broken(*args, **kwargs):
        raise error
    monkeypatch.setattr(image_check.Image, "open", broken)
    image, reason = image_check.check(data_factory.encoded((20, 20)))
    assert image is None and reason and "\n" not in reason


@pytest.mark.fault
def test_formats_outside_the_supported_list_are_never_opened():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    image, reason = image_check.check(eps)
    assert image is None and reason.startswith("not an image (unknown or unsupported format")
