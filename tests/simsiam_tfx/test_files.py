"""Tests of simsiam_tfx.files: the tolerant reader, the atomic writer, is_remote."""
import pytest
import tensorflow as tf

from simsiam_tfx import files


def test_read_json_is_none_for_a_missing_corrupt_or_non_object_record(tmp_path):
    assert files.read_json(str(tmp_path / "missing.json")) is None
    (tmp_path / "cut.json").write_text('{"version": ')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bytes.json").write_bytes(b"\xff\xfe")
    assert [files.read_json(str(tmp_path / name)) for name in ("cut.json", "list.json", "bytes.json")] == [None] * 3


def test_write_json_replaces_the_record_whole(tmp_path):
    path = str(tmp_path / "record.json")
    files.write_json(path, {"a": 1})
    files.write_json(path, {"b": 2}, indent=1)
    assert files.read_json(path) == {"b": 2} and sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_write_text_without_overwrite_leaves_an_existing_file_and_no_staged_copy(tmp_path):
    path = str(tmp_path / "sources.json")
    files.write_text(path, "first", overwrite=False)
    with pytest.raises(tf.errors.AlreadyExistsError):
        files.write_text(path, "second", overwrite=False)
    assert (tmp_path / "sources.json").read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["sources.json"]


def test_is_remote():
    assert files.is_remote("gs://bucket/runs") and not files.is_remote("/data/runs") and not files.is_remote("runs")
