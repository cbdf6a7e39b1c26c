"""Tests of simsiam_tfx.trainer.heads."""
import math

import numpy as np
import tf_keras as keras

from simsiam_tfx.trainer import heads


def test_projector_and_predictor_follow_the_paper():
    proj = heads.build_projector(64, 32, num_layers=2)
    dense = [layer for layer in proj.layers if isinstance(layer, keras.layers.Dense)]
    bns = [layer for layer in proj.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(dense) == 2 and not any(d.use_bias for d in dense)
    assert len(bns) == 2 and bns[-1].center is False and bns[-1].scale is False and bns[0].scale
    assert proj.output_shape == (None, 32)
    pred = heads.build_predictor(32)
    dense = [layer for layer in pred.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [8, 32] and not dense[0].use_bias and dense[1].use_bias
    assert len([layer for layer in pred.layers if isinstance(layer, keras.layers.BatchNormalization)]) == 1
    # PyTorch-default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    kernel = dense[0].kernel.numpy()
    assert np.abs(kernel).max() <= 1 / math.sqrt(32) + 1e-6 and np.abs(kernel).max() > 0.8 / math.sqrt(32)
