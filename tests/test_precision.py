"""Pre-training in mixed bfloat16 and float16: low-precision compute, float32 weights and loss,
loss scaling for float16, and the global policy restored."""
import math

import tensorflow as tf
import tf_keras as keras

from pipeline.config import PipelineConfig
from trainer.bench import write_transformed_examples
from trainer.pretrain import pretrain


def tiny_config(tmp_path, precision: str):
    """One epoch of a width-2 ResNet-18 on 32 16-px examples; returns (config, data file)."""
    data = str(tmp_path / "t.tfrecord.gz")
    write_transformed_examples(data, 32, 16)
    config = PipelineConfig()
    config.data.image_size = 16
    p = config.pretrain
    p.epochs, p.width, p.batch_size, p.knn_k, p.precision = 1, 2, 16, 0, precision
    return config, data


def test_pretraining_in_bfloat16_trains_and_restores_the_policy(tmp_path):
    config, data = tiny_config(tmp_path, "bf16")
    simsiam, metrics = pretrain(config, [data], None, None, 10, log_dir=str(tmp_path / "tb"))
    assert simsiam.encoder.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert simsiam.encoder.get_layer("stem_conv").dtype == "float32"  # weights stay float32
    assert simsiam.encoder.output.dtype == "float32"  # pooled features for probes are float32
    assert math.isfinite(metrics["final_loss"]) and -1.0 <= metrics["final_loss"] <= 1.0
    assert metrics["precision"] == "bf16"
    assert keras.mixed_precision.global_policy().name == "float32"


def test_pretraining_in_float16_scales_the_loss_and_resumes_with_the_loss_scale(tmp_path):
    config, data = tiny_config(tmp_path, "fp16")
    checkpoints = str(tmp_path / "ckpt")
    simsiam, metrics = pretrain(config, [data], None, None, 10, log_dir=str(tmp_path / "tb"),
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
    simsiam, metrics = pretrain(config, [data], None, None, 10, log_dir=str(tmp_path / "tb"),
                                checkpoint_dir=checkpoints)
    assert metrics["resumed_after_epoch"] == 1 and [row["epoch"] for row in metrics["history"]] == [1, 2]
    assert int(simsiam.optimizer.iterations) == 4 and math.isfinite(metrics["final_loss"])
