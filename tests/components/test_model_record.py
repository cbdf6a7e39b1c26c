"""The served versions on disk."""
import os

from simsiam_tfx.components import model_record
from tests.components.test_pusher import destination, saved_model


def test_newest_version_ignores_incomplete_and_staging_folders(tmp_path):
    base = tmp_path / "serving"
    saved_model(str(base / "100"))
    saved_model(str(base / "200"))
    os.makedirs(base / "300")  # half-copied: no saved_model.pb yet
    saved_model(str(base / ".staging-400"))
    assert model_record.newest_pushed(str(base)).version == 200
    assert model_record.newest_pushed(str(tmp_path / "nothing")) is None


def test_push_directory_reads_the_destination_as_proto_or_json(tmp_path):
    from tfx.proto import pusher_pb2
    proto = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path)))
    assert model_record.push_directory(proto) == model_record.push_directory(destination(tmp_path)) == str(tmp_path)
