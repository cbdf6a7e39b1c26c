"""Pre-training in mixed bfloat16: bf16 compute, float32 loss, and the global policy restored."""
import math

import tf_keras as keras

from pipeline.config import PipelineConfig
from trainer.bench import write_transformed_examples
from trainer.pretrain import pretrain


def test_pretraining_in_bfloat16_trains_and_restores_the_policy(tmp_path):
    data = str(tmp_path / "t.tfrecord.gz")
    write_transformed_examples(data, 32, 16)
    config = PipelineConfig()
    config.data.image_size = 16
    p = config.pretrain
    p.epochs, p.width, p.batch_size, p.knn_k, p.precision = 1, 2, 16, 0, "bf16"
    simsiam, metrics = pretrain(config, [data], None, None, 10, log_dir=str(tmp_path / "tb"))
    assert simsiam.encoder.get_layer("stem_conv").compute_dtype == "bfloat16"
    assert simsiam.encoder.get_layer("stem_conv").dtype == "float32"  # weights stay float32
    assert simsiam.encoder.output.dtype == "float32"  # pooled features for probes are float32
    assert math.isfinite(metrics["final_loss"]) and -1.0 <= metrics["final_loss"] <= 1.0
    assert metrics["precision"] == "bf16"
    assert keras.mixed_precision.global_policy().name == "float32"
