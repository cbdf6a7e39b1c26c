"""Shared test set-up: the Keras mode is set before anything imports TensorFlow."""
import io
import os

import trainer  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def encode(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    """Encode a uint8 array as an image file in memory with Pillow."""
    from PIL import Image
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
