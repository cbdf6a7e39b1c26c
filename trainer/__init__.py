"""SimSiam building blocks: backbones, heads, loss, augmentation, monitors, input data, run_fns.

The blocks know nothing of TFX; `pretrain.run_fn` and `probe.run_fn` adapt TFX's FnArgs to them.
"""
import os

# The one place that sets the Keras mode. TFX, tf.Transform and TFMA all use Keras 2 (tf_keras),
# and importing tensorflow_transform flips tf.keras to it anyway; setting it before TensorFlow
# loads keeps every import in agreement. Our code imports `tf_keras` directly, never `keras`.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
