"""simsiam-tfx: SimSiam self-supervised pre-training as a TFX pipeline.

The one import root of the installed distribution. pyproject.toml maps its sub-packages onto the
repository's top-level folders, each a layer that imports only the layers below it:

    simsiam_tfx.config, simsiam_tfx.features   shared facts: settings, split names, feature keys
    simsiam_tfx.trainer                         SimSiam blocks (no TFX)
    simsiam_tfx.components                      what TFX runs: ExampleGen, Transform module, run_fns
    simsiam_tfx.pipeline                        create_pipeline, local runner, summary, CLI
    simsiam_tfx.kubeflow                        compile, upload, run and schedule on KFP / Vertex AI
"""
import os

__version__ = "0.1.0"

# The one place that sets the Keras mode, before anything below loads TensorFlow. TFX, tf.Transform
# and TFMA all use Keras 2 (tf_keras), and importing tensorflow_transform flips tf.keras to it anyway;
# setting it first keeps every import in agreement. Our code imports `tf_keras`, never `keras`.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
