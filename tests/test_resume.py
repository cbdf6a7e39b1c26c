"""Checkpoint and resume: kill pre-training mid-run (SIGKILL), run again, it resumes."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from trainer.bench import write_transformed_examples

SCRIPT = """
import json, sys
import trainer
from pipeline.config import PipelineConfig
from trainer.pretrain import pretrain
config = PipelineConfig()
config.data.image_size = 16
config.pretrain.epochs, config.pretrain.width, config.pretrain.batch_size, config.pretrain.knn_k = 6, 2, 16, 0
_, metrics = pretrain(config, [sys.argv[1]], None, None, 10, log_dir=sys.argv[2] + "/tb", checkpoint_dir=sys.argv[2] + "/ckpt")
print("METRICS " + json.dumps({k: metrics[k] for k in ("resumed_after_epoch", "epochs")}
      | {"history_epochs": [row["epoch"] for row in metrics["history"]]}))
"""


@pytest.mark.slow
def test_pretraining_killed_mid_run_resumes_from_the_last_completed_epoch(tmp_path):
    data = str(tmp_path / "t.tfrecord.gz")
    write_transformed_examples(data, 64, 16)
    work = str(tmp_path / "work")
    command = [sys.executable, "-c", SCRIPT, data, work]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 240
    while not os.path.exists(os.path.join(work, "ckpt", "ckpt-2.index")):
        assert first.poll() is None, first.stdout.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint after 240 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # a crash: no clean-up, no chance to save more
    first.wait()

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "[pretrain] resuming after epoch" in second.stdout
    metrics = json.loads(second.stdout.split("METRICS ", 1)[1])
    assert 2 <= metrics["resumed_after_epoch"] < 6
    assert metrics["history_epochs"] == [1, 2, 3, 4, 5, 6]  # each epoch once: nothing redone or lost
