"""Tests of simsiam_tfx.trainer.schedules."""
import math

import pytest

from simsiam_tfx.trainer import schedules


def test_cosine_schedule_spans_exactly_the_whole_run():
    s = schedules.warmup_cosine(0.1, total_steps=1000)
    assert math.isclose(float(s(0)), 0.1, rel_tol=1e-6)
    assert math.isclose(float(s(500)), 0.05, rel_tol=1e-5)
    assert float(s(999)) > 0 and float(s(1000)) == pytest.approx(0.0, abs=1e-9)


def test_warm_up_is_linear_and_the_decay_still_ends_at_total_steps():
    w = schedules.warmup_cosine(0.1, total_steps=1000, warmup_steps=100)
    assert float(w(0)) == pytest.approx(0.0) and float(w(50)) == pytest.approx(0.05)
    assert float(w(100)) == pytest.approx(0.1)
    assert float(w(550)) == pytest.approx(0.05, rel=1e-5)
    assert float(w(1000)) == pytest.approx(0.0, abs=1e-9)
    assert schedules.peak_learning_rate(w) == pytest.approx(0.1)
    assert schedules.peak_learning_rate(schedules.warmup_cosine(0.3, 10)) == pytest.approx(0.3)


def test_a_warm_up_as_long_as_the_run_is_refused():
    with pytest.raises(ValueError, match="must exceed"):
        schedules.warmup_cosine(0.1, total_steps=10, warmup_steps=10)


@pytest.mark.parametrize("warmup_steps", [0, 100])
def test_the_decay_can_end_at_a_fraction_of_the_peak(warmup_steps):
    s = schedules.warmup_cosine(0.1, total_steps=1000, warmup_steps=warmup_steps, final_fraction=0.25)
    assert float(s(1000)) == pytest.approx(0.025) and float(s(5000)) == pytest.approx(0.025)
    midway = warmup_steps + (1000 - warmup_steps) // 2
    assert float(s(midway)) == pytest.approx(0.025 + 0.075 / 2, rel=1e-4)
    assert schedules.peak_learning_rate(s) == pytest.approx(0.1)
