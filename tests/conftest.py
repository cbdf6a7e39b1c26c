"""Shared test set-up: the Keras mode is set before anything imports TensorFlow."""
import os

import numpy as np
import pytest

import simsiam_tfx  # noqa: F401  (sets the Keras mode before TensorFlow loads)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# The suite runs on two pytest-xdist workers (`./simsiam test`, --dist loadgroup). A module's tests
# stay together, so its module-scoped fixtures (a compiled spec, a trained model, a whole CLI run)
# are built once; the slow whole-pipeline tests that share nothing are spread one by one.
SPREAD_ONE_BY_ONE = ("tests/kubeflow/test_launchers.py",)


# tryfirst: xdist's worker reads the groups in its own pytest_collection_modifyitems, which would
# otherwise run before this one and find none (each module's fixtures then built on both workers).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.nodeid.split("::")[0]
        if module not in SPREAD_ONE_BY_ONE:
            item.add_marker(pytest.mark.xdist_group(module))
    # The slow tests first (a stable sort: each module's order stays): the workers hand out work in
    # this order, and a long test started last would keep one worker busy while the other waits.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# Property-based tests (Hypothesis) run the same bounded set of examples everywhere: derandomized
# (a fixed seed), no example database, no per-example deadline (a loaded CI machine is slow).
from hypothesis import settings  # noqa: E402

settings.register_profile("simsiam-ci", derandomize=True, database=None, deadline=None, max_examples=150,
                          print_blob=True)
settings.load_profile("simsiam-ci")
