"""Tests of simsiam_tfx.pipeline.report's parts (the whole report on a real run: tests/e2e/test_report.py)."""
import json

import numpy as np
import pytest

from simsiam_tfx.components import preprocessing
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.pipeline import report
from simsiam_tfx.trainer import data


def history(losses):
    return [{"epoch": i + 1, "loss": loss, "learning_rate": 0.1 / (i + 1), "z_std": 0.1, "knn_accuracy": 0.1 * i}
            for i, loss in enumerate(losses)]


def test_a_report_that_cannot_be_built_says_so_in_one_line(tmp_path, capsys):
    assert report.write_report(str(tmp_path), "simsiam-tfx") is None
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 1 and said[0].startswith("report: not written (FileNotFoundError: ")


def test_curves_show_every_run_side_by_side(tmp_path):
    figure = report._curves_figure([(3, history([0.0, -0.5])), (9, history([-0.1, -0.6, -0.8]))],
                                   {"pretrain": {"z_std_healthy": 0.125}})
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["run 3", "run 9 (this run)", "floor −1 (collapse)"]
    assert "1/√d = 0.125" in figure.axes[2].get_legend_handles_labels()[1]
    assert report._save(figure, str(tmp_path), "curves.png") == "curves.png"
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_the_knn_curve_joins_the_epochs_the_monitor_ran(tmp_path):
    rows = history([-0.1 * i for i in range(12)])
    for row in rows:
        if row["epoch"] % 5 and row["epoch"] != 12:  # the monitor's cadence: every 5 epochs and the last
            row.pop("knn_accuracy")
    figure = report._curves_figure([(1, rows)], {})
    [knn] = figure.axes[3].get_lines()
    np.testing.assert_array_equal(knn.get_xdata(), [5, 10, 12])
    [loss] = [line for line in figure.axes[0].get_lines() if len(line.get_xdata()) == 12]


def test_nearest_neighbours_by_cosine_similarity():
    reference = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], np.float32)
    queries = np.array([[10, 1], [0, 3]], np.float32)
    np.testing.assert_array_equal(report._nearest(reference, queries, 2), [[0, 2], [1, 2]])


def test_augmentation_preview_is_drawn_by_the_runs_transform_graph_seeded(tmp_path):
    graph = str(tmp_path / "transform_graph")
    data.write_transform_graph(graph, preprocessing.policy_config("cifar"), 32, "cifar", temp_dir=str(tmp_path / "t"))
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32) / 255.0
    (first, policy), (second, _) = [report._augmentation_preview(images, graph, 32) for _ in range(2)]
    np.testing.assert_array_equal(first[0], second[0])
    assert first[0].shape == (4, 32, 32, 3) and not np.allclose(first[0], first[1])
    assert not np.allclose(first[0], images) and policy["name"] == "cifar"
    with pytest.raises(LookupError, match="no Transform graph"):
        report._augmentation_preview(images, None, 32)


def test_page_shows_every_figure_and_escapes_file_names(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path))
    summary = {"dataset": "shapes", "run_id": "r1", "seconds_total": 12.0,
               "pretrain": {"epochs": 2, "final_loss": -0.5, "z_std": 0.1, "z_std_healthy": 0.125, "collapsed": False,
                            "knn_accuracy": 0.3},
               "probe": {"accuracy": 0.4, "random_init_accuracy": 0.1},
               "evaluator": {"accuracy": 0.4, "threshold": 0.14, "blessed": True, "failures": []},
               "pushed_model": None, "examples": {"skipped": 1}}
    skipped = {"count": 1, "by_reason": {"empty file": 1}, "report": "x.jsonl",
               "rows": [{"item": "<script>alert(1)</script>.jpg", "reason": "empty file"}]}
    figures = {name: f"{name}.png" for name in ("curves", "augmentations", "neighbours", "embedding", "probe", "data")}
    run = report.RunArtifacts(config, ("a", "b"), None, None, None, None, None, [])
    page = report._render(summary, figures, skipped, run, 100, 50, "/runs/o<1>")
    for source in figures.values():
        assert f'src="{source}"' in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page
    assert "No served model in this run" in page
    assert "simsiam-tfx report --output /runs/o&lt;1&gt;" in page
    assert json.loads(page[page.index("<pre>") + 5:page.index("</pre>")].replace("&#34;", '"')) == summary


def test_probe_figure_draws_the_floor_and_the_previous_blessed_model():
    figure = report._probe_figure({"probe": {"accuracy": 0.4, "random_init_accuracy": 0.1, "supervised_accuracy": 0.6},
                                   "pretrain": {"knn_accuracy": 0.3},
                                   "evaluator": {"threshold": 0.14, "baseline_accuracy": 0.35, "blessed": True}})
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["SimSiam\nlinear probe", "random-init\nlinear probe",
                                                             "SimSiam\nkNN", "supervised\nfrom scratch"]
    assert ax.get_legend_handles_labels()[1] == ["Evaluator floor 0.14", "previous blessed model 0.350"]
