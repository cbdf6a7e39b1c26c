"""A model folder's content fingerprint."""
import json
import os

from simsiam_tfx.components import model_files, model_record
from tests.components.test_pusher import saved_model


def test_fingerprint_follows_content_not_the_push_record(tmp_path):
    a = saved_model(str(tmp_path / "a"))
    b = saved_model(str(tmp_path / "b"))
    with open(os.path.join(b, model_record.PUSH_RECORD), "w") as f:
        json.dump({"x": 1}, f)
    assert model_files.model_fingerprint(a) == model_files.model_fingerprint(b)
    saved_model(a, b"changed")
    assert model_files.model_fingerprint(a) != model_files.model_fingerprint(b)
