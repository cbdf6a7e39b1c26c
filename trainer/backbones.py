"""ResNet encoders, built with the functional API so that a saved encoder reloads without custom code.

- `resnet18` CIFAR-style: 3x3 stride-1 stem, no max-pool (for images up to ~96 px), with a width
  multiplier (`width` = channels of the first stage; 64 is the standard network).
- `resnet50` ImageNet-style: 7x7 stride-2 stem and max-pool, bottleneck blocks (224 px).

The last BatchNorm gamma of every residual block starts at zero, so each block starts as identity
(Goyal et al. 2017), as the SimSiam reference code does.
"""
from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from simsiam_tfx.registries import BACKBONE_ARCHS
from simsiam_tfx.trainer import distribute

BN_MOMENTUM = 0.9  # PyTorch's 0.1 in Keras' convention
BN_EPSILON = 1e-5


def _conv(filters: int, kernel: int, stride: int, name: str) -> layers.Conv2D:
    # He-normal fan-out, as torchvision's ResNet; no bias before BN.
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                         kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal"),
                         name=name)


def _bn(name: str, zero_gamma: bool = False) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name,
                                     gamma_initializer="zeros" if zero_gamma else "ones",
                                     synchronized=distribute.sync_batchnorm())


def _basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = _conv(filters, 3, stride, f"{name}_conv1")(x)
    y = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(y))
    y = _conv(filters, 3, 1, f"{name}_conv2")(y)
    y = _bn(f"{name}_bn2", zero_gamma=True)(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _bn(f"{name}_down_bn")(_conv(filters, 1, stride, f"{name}_down_conv")(x))
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def _bottleneck_block(x, filters: int, stride: int, name: str):
    out_filters = 4 * filters
    shortcut = x
    y = layers.ReLU(name=f"{name}_relu1")(_bn(f"{name}_bn1")(_conv(filters, 1, 1, f"{name}_conv1")(x)))
    y = layers.ReLU(name=f"{name}_relu2")(_bn(f"{name}_bn2")(_conv(filters, 3, stride, f"{name}_conv2")(y)))
    y = _bn(f"{name}_bn3", zero_gamma=True)(_conv(out_filters, 1, 1, f"{name}_conv3")(y))
    if stride != 1 or x.shape[-1] != out_filters:
        shortcut = _bn(f"{name}_down_bn")(_conv(out_filters, 1, stride, f"{name}_down_conv")(x))
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


_BLOCKS = {"basic": _basic_block, "bottleneck": _bottleneck_block}


def build_encoder(backbone: str, image_size: int | None, width: int = 64, name: str = "encoder") -> keras.Model:
    """Images in [0, 1], shape (B, S, S, 3) -> globally pooled features (B, C). With `image_size`
    None the encoder takes images of any side (pre-training on views smaller than the images)."""
    if backbone not in BACKBONE_ARCHS:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONE_ARCHS)}")
    block_kind, stages, cifar_stem = BACKBONE_ARCHS[backbone]
    block = _BLOCKS[block_kind]
    inputs = keras.Input((image_size, image_size, 3), name="image")
    # Centre the [0, 1] pixels; a fixed affine map, part of the model so serving matches training.
    x = layers.Rescaling(2.0, offset=-1.0, name="centre")(inputs)
    if cifar_stem:
        x = layers.ReLU(name="stem_relu")(_bn("stem_bn")(_conv(width, 3, 1, "stem_conv")(x)))
    else:
        x = layers.ReLU(name="stem_relu")(_bn("stem_bn")(_conv(width, 7, 2, "stem_conv")(x)))
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, num_blocks in enumerate(stages):
        filters = width * 2**stage
        for i in range(num_blocks):
            stride = 2 if (stage > 0 and i == 0) else 1
            x = block(x, filters, stride, f"stage{stage + 1}_block{i + 1}")
    features = layers.GlobalAveragePooling2D(name="pool", dtype="float32")(x)
    return keras.Model(inputs, features, name=name)


def with_input_size(encoder: keras.Model, image_size: int) -> keras.Model:
    """`encoder` as a model of images of `image_size`, with the same weights and layers (their
    precision policies included): the encoder is fully convolutional, so one trained on views of
    any side is exported at the image side. Returns `encoder` itself when it already is one."""
    if encoder.input_shape[1:3] == (image_size, image_size):
        return encoder
    config = encoder.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_input_shape"] = (None, image_size, image_size, 3)
    fixed = keras.Model.from_config(config)
    fixed.set_weights(encoder.get_weights())
    return fixed
