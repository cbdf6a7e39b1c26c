"""Tests of simsiam_tfx.trainer.pretrain: checkpoint and resume (kill mid-run with SIGKILL, run again,
it resumes), and pre-training in mixed bfloat16 and float16 (low-precision compute, float32 weights
and loss, loss scaling for float16, the global policy restored)."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from simsiam_tfx.components.preprocessing import in_process
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.trainer.pretrain import PretrainData, pretrain
from tests import data_factory

SCRIPT = """
import json, sys
from simsiam_tfx.config import PipelineConfig
from simsiam_tfx.components.preprocessing import in_process
from simsiam_tfx.trainer.pretrain import PretrainData, pretrain
config = PipelineConfig()
config.data.image_size = 16
config.pretrain.epochs, config.pretrain.width, config.pretrain.batch_size, config.pretrain.knn_k = 6, 2, 16, 0
_, metrics = pretrain(config, PretrainData([sys.argv[1]], in_process(config), num_classes=10), log_dir=sys.argv[2] + "/tb", checkpoint_dir=sys.argv[2] + "/ckpt")
print("METRICS " + json.dumps({k: metrics[k] for k in ("resumed_after_epoch", "epochs")}
      | {"history_epochs": [row["epoch"] for row in metrics["history"]]}))
"""


@pytest.mark.slow
@pytest.mark.fault
def test_pretraining_killed_mid_run_resumes_from_the_last_completed_epoch(tmp_path):
    data = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_random_transformed(data, 64, 16)
    work = str(tmp_path / "work")
    command = [sys.executable, "-c", SCRIPT, data, work]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 600  # liveness only: a loaded 2-core machine is slow
    # The checkpoint's state file names a checkpoint only once all its files are written.
    while not (tf.train.latest_checkpoint(os.path.join(work, "ckpt")) or "-0").endswith(("-2", "-3", "-4", "-5")):
        assert first.poll() is None, first.stdout.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint after 600 s"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # a crash: no clean-up, no chance to save more
    first.wait()

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "[pretrain] resuming after epoch" in second.stdout
    metrics = json.loads(second.stdout.split("METRICS ", 1)[1])
    assert 2 <= metrics["resumed_after_epoch"] < 6
    assert metrics["history_epochs"] == [1, 2, 3, 4, 5, 6]  # each epoch once: nothing redone or lost


def tiny_config(tmp_path, precision: str):
    """One epoch of a width-2 ResNet-18 on 32 16-px examples; returns (config, data file)."""
    data = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_random_transformed(data, 32, 16)
    config = PipelineConfig()
    config.data.image_size = 16
    p = config.pretrain
    p.epochs, p.width, p.batch_size, p.knn_k, p.precision = 1, 2, 16, 0, precision
    return config, data


def test_pretraining_in_bfloat16_trains_and_restores_the_policy(tmp_path):
    config, data = tiny_config(tmp_path, "bf16")
    simsiam, metrics = pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb"))
    assert simsiam.encoder.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert simsiam.encoder.get_layer("stem_conv").dtype == "float32"  # weights stay float32
    assert simsiam.encoder.output.dtype == "float32"  # pooled features for probes are float32
    assert math.isfinite(metrics["final_loss"]) and -1.0 <= metrics["final_loss"] <= 1.0
    assert metrics["precision"] == "bf16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_pretraining_in_float16_scales_the_loss_and_resumes_with_the_loss_scale(tmp_path):
    config, data = tiny_config(tmp_path, "fp16")
    checkpoints = str(tmp_path / "ckpt")
    simsiam, metrics = pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb"),
                                checkpoint_dir=checkpoints)
    assert simsiam.encoder.get_layer("stem_conv").compute_dtype == "float16"
    assert simsiam.encoder.get_layer("stem_conv").dtype == "float32"  # weights stay float32
    assert all(v.dtype == tf.float32 for v in simsiam.trainable_variables)
    assert simsiam.encoder.output.dtype == "float32"
    for optimizer in (simsiam.optimizer, simsiam.predictor_optimizer):  # both scale the loss, dynamically
        assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer) and optimizer.dynamic
    assert int(simsiam.optimizer.iterations) == 2
    assert math.isfinite(metrics["final_loss"]) and -1.0 <= metrics["final_loss"] <= 1.0
    assert metrics["precision"] == "fp16"
    assert keras.mixed_precision.global_policy().name == "float32"
    # The checkpoint holds both loss scales; a longer run resumes from it.
    saved = [name for name, _ in tf.train.list_variables(tf.train.latest_checkpoint(checkpoints))]
    assert {"optimizer/loss_scale", "predictor_optimizer/loss_scale"} <= {n.rsplit("/current_loss_scale", 1)[0]
                                                                           for n in saved}, saved
    config.pretrain.epochs = 2
    simsiam, metrics = pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb"),
                                checkpoint_dir=checkpoints)
    assert metrics["resumed_after_epoch"] == 1 and [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert int(simsiam.optimizer.iterations) == 4 and math.isfinite(metrics["final_loss"])


@pytest.mark.parametrize("damage", ["truncated history", "truncated checkpoint data"])
@pytest.mark.fault
def test_a_damaged_checkpoint_is_set_aside_and_training_starts_afresh(tmp_path, damage, capsys):
    data = str(tmp_path / "t.tfrecord.gz")
    data_factory.write_random_transformed(data, 32, 16)
    config = PipelineConfig()
    config.data.image_size = 16
    p = config.pretrain
    p.epochs, p.width, p.batch_size, p.knn_k = 1, 2, 16, 0
    checkpoints = str(tmp_path / "ckpt")
    pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb"), checkpoint_dir=checkpoints)
    if damage == "truncated history":
        path = os.path.join(checkpoints, "history.json")
    else:
        [path] = [os.path.join(checkpoints, f) for f in os.listdir(checkpoints) if ".data-" in f]
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    config.pretrain.epochs = 2
    _, metrics = pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb"),
                          checkpoint_dir=checkpoints)
    out = capsys.readouterr().out
    assert "is damaged" in out and "training starts from epoch 0" in out
    assert metrics["resumed_after_epoch"] == 0 and [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert any(".damaged-" in name for name in os.listdir(tmp_path))


def test_warm_start_begins_from_the_given_encoder_weights(tmp_path):
    """With a zero learning rate and no weight decay nothing moves the weights: the encoder that
    pre-training ends with is the one it was given, not a fresh initialisation."""
    from simsiam_tfx.trainer import backbones
    config, data = tiny_config(tmp_path, "fp32")
    config.pretrain.base_lr, config.pretrain.weight_decay = 0.0, 0.0
    keras.utils.set_random_seed(123)
    served = backbones.build_encoder("resnet18", 16, 2)
    simsiam, metrics = pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb"),
                                initial_encoder_weights=served.get_weights())
    assert metrics["num_examples"] == 32
    for given, trained in zip(served.trainable_weights, simsiam.encoder.trainable_weights):
        np.testing.assert_array_equal(given.numpy(), trained.numpy())
    fresh, _ = pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb2"))
    assert not np.array_equal(fresh.encoder.trainable_weights[0].numpy(), served.trainable_weights[0].numpy())


@pytest.mark.parametrize("budget_s, spent_s, ips, per_epoch, knn_pass, knn_every, expected", [
    (600, 20, 300, 3000, 2, 1, 48),  # (600 - 20 - 2) // (10 + 2)
    (600, 20, 300, 3000, 2, 5, 55),  # (600 - 20 - 2) // (10 + 2 / 5): a pass every 5 epochs and after the last
    (600, 0, 100, 3000, 0, 1, 20), (60, 59, 1000, 1000, 0, 1, 1), (60, 61, 1000, 1000, 0, 1, 0),
    (10, 0, 10, 1000, 0, 1, 0)])
def test_the_epochs_of_a_time_budget_fit_what_is_left_of_it(budget_s, spent_s, ips, per_epoch, knn_pass, knn_every,
                                                            expected):
    from simsiam_tfx.trainer.pretrain import choose_epochs
    assert choose_epochs(budget_s, spent_s, ips, per_epoch, knn_pass, knn_every) == expected


def test_a_time_budget_chooses_the_epochs_from_measured_throughput_and_a_resumed_run_keeps_them(tmp_path, capsys,
                                                                                                  monkeypatch):
    from simsiam_tfx.trainer import pretrain as pretrain_module
    config, data = tiny_config(tmp_path, "fp32")
    config.pretrain.time_budget = "40s"
    measured, real_measure = [], pretrain_module._measure

    def measure_then_report_slow(run, inputs):
        # The real measurement runs; the choice is then made as on a machine where an epoch of the
        # 32 examples takes 4 s, so that a few epochs fill the budget whatever this machine's speed.
        measured.append(real_measure(run, inputs))
        return 8.0, 0.0
    monkeypatch.setattr(pretrain_module, "_measure", measure_then_report_slow)
    inputs = PretrainData([data], in_process(config), num_classes=10)
    _, metrics = pretrain(config, inputs, log_dir=str(tmp_path / "tb"), checkpoint_dir=str(tmp_path / "ckpt"))
    [(images_per_second, knn_seconds)] = measured
    assert images_per_second > 0 and knn_seconds == 0.0  # knn_k = 0: no monitor to time
    budget = metrics["time_budget"]
    assert budget["budget"] == "40s" and budget["images_per_second"] == 8.0
    assert metrics["epochs"] == budget["epochs"] >= 1 and len(metrics["history"]) == budget["epochs"]
    assert budget["epochs"] == int((40 - budget["seconds_before_training"]) // 4)
    assert "epochs chosen: {} for 40s at 8 images/s".format(budget["epochs"]) in capsys.readouterr().out
    # What the first execution decided is kept beside the checkpoints: a resumed run follows it.
    with open(tmp_path / "ckpt" / "time_budget.json") as f:
        assert json.load(f)["epochs"] == budget["epochs"]


def test_a_time_budget_too_small_for_one_epoch_is_one_line(tmp_path, monkeypatch):
    from simsiam_tfx.config import ConfigError
    from simsiam_tfx.trainer import pretrain as pretrain_module
    config, data = tiny_config(tmp_path, "fp32")
    config.pretrain.time_budget = "10s"
    monkeypatch.setattr(pretrain_module, "_measure", lambda run, inputs: (1.0, 0.0))  # 1 image/s: 32 s an epoch
    with pytest.raises(ConfigError, match=r"--time-budget 10s is too small for one epoch of pre-training: one takes "
                                          r"about 32 s here \(1 images/s, 32 images an epoch\)"):
        pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb"))


def _sparse(values_by_epoch: dict[int, float], epochs: int) -> list[dict]:
    """A history of `epochs` rows with kNN accuracy on the epochs given only (the monitor's cadence)."""
    return [{"epoch": e, "knn_accuracy": values_by_epoch.get(e)} for e in range(1, epochs + 1)]


@pytest.mark.parametrize("history, rising", [
    (_sparse({e: 0.1 + 0.01 * e for e in range(1, 13)}, 12), True), (_sparse({e: 0.3 for e in range(1, 13)}, 12), False),
    (_sparse(dict(enumerate([0.1, 0.2, 0.3, 0.3, 0.31, 0.3, 0.3, 0.3], 1)), 8), False),
    (_sparse({1: 0.1, 2: 0.3, 3: 0.2}, 3), None),
    # Every 5 epochs and the last, as the default cadence: rising only at the end, or flat at the end.
    (_sparse({5: 0.1, 10: 0.2, 15: 0.25, 20: 0.26, 25: 0.27, 30: 0.3, 35: 0.34, 38: 0.36}, 38), True),
    (_sparse({5: 0.1, 10: 0.2, 15: 0.25, 20: 0.3, 25: 0.34, 30: 0.35, 35: 0.35, 38: 0.35}, 38), False),
    (_sparse({5: 0.1, 8: 0.2}, 8), None)])  # two points: too few to say
def test_whether_more_time_would_pay_follows_the_end_of_the_knn_curve(history, rising):
    from simsiam_tfx.pipeline.summary import more_time_line
    from simsiam_tfx.trainer.pretrain import more_time_verdict
    verdict = more_time_verdict(history, seconds=300)
    if rising is None:  # too short a curve to say
        assert verdict is None and more_time_line(verdict, 300) is None
        return
    assert verdict["still_rising"] is rising
    line = more_time_line(verdict, 300)
    assert line.startswith("likely to pay") if rising else line.startswith("unlikely to pay")
    if rising:
        assert verdict["suggested_budget_seconds"] == 600 and "--time-budget 10m" in line


@pytest.mark.parametrize("flags, width, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, 16, "bf16"), ({"avx2", "amx_bf16", "amx_tile"}, 64, "bf16"),
    ({"avx2", "amx_bf16", "amx_tile"}, 8, "fp32"),  # narrower than the bf16 kernels' channel blocks
    ({"avx2", "avx512f"}, 16, "fp32"), (set(), 16, "fp32")])
def test_auto_precision_picks_bf16_only_where_the_cpu_computes_it_faster(flags, width, expected):
    from simsiam_tfx.trainer.pretrain import auto_precision
    precision, why = auto_precision(width, flags, [])
    assert precision == expected and why


def test_auto_precision_resolves_before_training_and_is_named(tmp_path, capsys):
    from simsiam_tfx.trainer.pretrain import auto_precision
    config, data = tiny_config(tmp_path, "auto")
    _, metrics = pretrain(config, PretrainData([data], in_process(config), num_classes=10), log_dir=str(tmp_path / "tb"))
    assert metrics["precision"] == auto_precision(config.pretrain.width)[0]
    assert f"precision auto: {metrics['precision']}" in capsys.readouterr().out
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


def test_pretraining_on_views_smaller_than_the_images_monitors_and_exports_at_the_image_side(tmp_path):
    from simsiam_tfx.trainer import backbones
    config, data = tiny_config(tmp_path, "fp32")
    config.pretrain.view_size, config.pretrain.knn_k = 8, 5
    labelled = str(tmp_path / "labelled.tfrecord.gz")
    data_factory.write_random_transformed(labelled, 20, 16, seed=1)
    simsiam, metrics = pretrain(config, PretrainData([data], in_process(config), [labelled], [labelled], 10),
                                log_dir=str(tmp_path / "tb"))
    assert simsiam.encoder.input_shape == (None, None, None, 3)  # trained on 8 px views
    assert metrics["history"][0]["knn_accuracy"] is not None  # the monitor saw the 16 px images
    exported = backbones.with_input_size(simsiam.encoder, 16)
    images = tf.random.stateless_uniform((2, 16, 16, 3), (0, 1))
    np.testing.assert_array_equal(exported(images).numpy(), simsiam.encoder(images).numpy())


def test_the_knn_monitor_runs_at_its_cadence_and_after_the_last_epoch_and_never_changes_the_encoder(tmp_path):
    config, data = tiny_config(tmp_path, "fp32")
    config.pretrain.epochs, config.pretrain.knn_k = 5, 5
    labelled = str(tmp_path / "labelled.tfrecord.gz")
    data_factory.write_random_transformed(labelled, 20, 16, seed=1)
    trained = {}
    for every in (1, 2):
        config.pretrain.knn_every = every
        keras.utils.set_random_seed(7)
        simsiam, metrics = pretrain(config, PretrainData([data], in_process(config), [labelled], [labelled], 10),
                                    log_dir=str(tmp_path / f"tb{every}"))
        trained[every] = [w.numpy() for w in simsiam.encoder.weights]
        monitored = [row["epoch"] for row in metrics["history"] if row.get("knn_accuracy") is not None]
        assert monitored == ([1, 2, 3, 4, 5] if every == 1 else [2, 4, 5])
        assert len(metrics["history"]) == 5 and metrics["knn_accuracy"] is not None
    for a, b in zip(trained[1], trained[2]):
        np.testing.assert_array_equal(a, b)
