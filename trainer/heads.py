"""SimSiam's projection and prediction MLPs, as in the paper (Chen & He 2020, Sec. 4 and B).

- projector: `num_layers` fully connected layers of width d, BN after every one (the output BN
  without affine parameters), ReLU after all but the last, no bias before BN. 3 layers for
  ImageNet-size inputs, 2 for CIFAR-size.
- predictor: d -> d/4 -> d, BN + ReLU on the hidden layer only; the output layer has a bias.

Dense layers use PyTorch's default initialisation (kaiming-uniform with a = sqrt(5), i.e.
U(+-1/sqrt(fan_in))); Glorot is known to hurt SimSiam in TF.
"""
from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from simsiam_tfx.trainer import distribute
from simsiam_tfx.trainer.backbones import BN_EPSILON, BN_MOMENTUM


def torch_linear_init() -> keras.initializers.Initializer:
    # Var = 1/(3 fan_in)  <=>  U(-1/sqrt(fan_in), 1/sqrt(fan_in)); same scale for the bias below.
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def _dense(units: int, use_bias: bool, name: str) -> layers.Dense:
    return layers.Dense(units, use_bias=use_bias, kernel_initializer=torch_linear_init(),
                        bias_initializer=torch_linear_init() if use_bias else "zeros", name=name)


def _bn(name: str, affine: bool = True) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, center=affine, scale=affine,
                                     name=name, synchronized=distribute.sync_batchnorm())


def build_projector(in_dim: int, dim: int, num_layers: int, name: str = "projector") -> keras.Model:
    if num_layers < 2:
        raise ValueError("the projection MLP needs at least 2 layers")
    inputs = keras.Input((in_dim,), name="features")
    x = inputs
    for i in range(num_layers - 1):
        x = layers.ReLU(name=f"relu{i + 1}")(_bn(f"bn{i + 1}")(_dense(dim, False, f"fc{i + 1}")(x)))
    x = _bn(f"bn{num_layers}", affine=False)(_dense(dim, False, f"fc{num_layers}")(x))
    return keras.Model(inputs, x, name=name)


def build_predictor(dim: int, name: str = "predictor") -> keras.Model:
    inputs = keras.Input((dim,), name="z")
    x = layers.ReLU(name="relu1")(_bn("bn1")(_dense(dim // 4, False, "fc1")(inputs)))
    x = _dense(dim, True, "fc2")(x)
    return keras.Model(inputs, x, name=name)
