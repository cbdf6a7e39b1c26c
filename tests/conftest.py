"""Shared test set-up: the Keras mode is set before anything imports TensorFlow."""
import os

import numpy as np
import pytest

import simsiam_tfx  # noqa: F401  (sets the Keras mode before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
