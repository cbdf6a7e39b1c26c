"""The quality-per-minute harness (benchmarks/study.py) end to end at its tiny setting (seconds)."""
import numpy as np

from benchmarks import study


def test_textures_are_balanced_seeded_and_class_dependent():
    x, y = study.textures(90, 32, seed=0)
    assert x.shape == (90, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [10] * study.TEXTURE_CLASSES
    x2, y2 = study.textures(90, 32, seed=0)
    assert (x == x2).all() and (y == y2).all()
    # The bands differ in spatial frequency: mean absolute neighbour difference grows with the band.
    grey = x.mean(axis=-1)
    roughness = np.abs(np.diff(grey, axis=2)).mean(axis=(1, 2)) / (grey.std(axis=(1, 2)) + 1e-6)
    by_band = [roughness[(y // 3) == band].mean() for band in range(3)]
    assert by_band[0] < by_band[1] < by_band[2]


def test_tiny_study_runs_and_reports_every_number(capsys):
    # One data set: the harness runs each the same way (textures' own generator: the test above).
    summary = study.main(["--tiny", "--datasets", "digits", "--seeds", "0"])
    assert set(summary) == {"digits"}
    for entry in summary.values():
        for key in ("select_accuracy", "eval_accuracy", "random_init_eval", "gain", "images_per_second"):
            assert np.isfinite(entry[key])
        assert 0.0 <= entry["eval_accuracy"] <= 1.0 and entry["images_per_second"] > 0
        assert abs(entry["gain"] - (entry["eval_accuracy"] - entry["random_init_eval"])) < 1e-3
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and '"table"' in lines[-1]  # a line per data set, then the table
