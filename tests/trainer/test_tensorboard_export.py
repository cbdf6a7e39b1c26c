"""Tests of simsiam_tfx.trainer.tensorboard_export."""
import numpy as np
import tensorflow as tf

from simsiam_tfx.trainer import tensorboard_export


def test_image_grid_places_every_image_with_white_gaps():
    red, blue = np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), np.float32)
    red[..., 0], blue[..., 2] = 1.0, 1.0
    grid = tensorboard_export.image_grid([[red, blue], [blue]], pad=1)
    assert grid.shape == (2 * 5 + 1, 2 * 5 + 1, 3)
    np.testing.assert_array_equal(grid[1:5, 1:5], red)
    np.testing.assert_array_equal(grid[1:5, 6:10], blue)
    np.testing.assert_array_equal(grid[6:10, 1:5], blue)
    assert (grid[6:10, 6:10] == 1.0).all() and (grid[0] == 1.0).all()  # empty cell and gap stay white


def test_image_summaries_and_projector_export_are_readable_by_tensorboard(tmp_path):
    from google.protobuf import text_format
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins import projector

    tensorboard_export.write_image_summaries(str(tmp_path), {"report/preview": np.full((6, 9, 3), 0.5, np.float32)})
    events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    events.Reload()
    assert "report/preview" in events.Tags()["tensors"]

    embeddings = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    folder = tmp_path / "projector"
    checkpoint = tensorboard_export.export_projector(str(folder), embeddings, ["a", "b", "a", "c", "b"],
                                                     thumbnails=np.zeros((5, 4, 4, 3), np.float32))
    config = text_format.Parse((folder / "projector_config.pbtxt").read_text(), projector.ProjectorConfig())
    assert config.embeddings[0].metadata_path == "metadata.tsv" and config.embeddings[0].sprite.image_path
    assert (folder / "metadata.tsv").read_text().splitlines() == ["a", "b", "a", "c", "b"]
    restored = tf.train.load_variable(checkpoint, config.embeddings[0].tensor_name)
    np.testing.assert_allclose(restored, embeddings)
