"""The run report's TensorBoard exports: image grids as image summaries (the Images tab) and
embeddings for the Projector tab."""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf


def image_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Equal-sized float [0, 1] (H, W, 3) images, row by row -> one (H', W', 3) image, white gaps."""
    height, width = rows[0][0].shape[:2]
    columns = max(len(r) for r in rows)
    grid = np.ones((len(rows) * (height + pad) + pad, columns * (width + pad) + pad, 3), np.float32)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            y, x = pad + i * (height + pad), pad + j * (width + pad)
            grid[y:y + height, x:x + width] = image
    return grid


def write_image_summaries(log_dir: str, images: dict[str, np.ndarray], step: int = 0) -> None:
    """Float [0, 1] (H, W, 3) images as TensorBoard image summaries (the Images tab)."""
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=step):
        for name, image in images.items():
            tf.summary.image(name, image[np.newaxis], max_outputs=1)
    writer.close()


def export_projector(log_dir: str, embeddings: np.ndarray, labels: Sequence[str],
                     thumbnails: Optional[np.ndarray] = None, name: str = "eval_embedding") -> str:
    """Embeddings (N, D), a label per row and optional (N, h, w, 3) float thumbnails -> a folder
    TensorBoard's Projector tab reads: a checkpoint of the embedding, metadata.tsv, a sprite and
    projector_config.pbtxt. Returns the checkpoint path."""
    from PIL import Image
    from tensorboard.plugins import projector

    tf.io.gfile.makedirs(log_dir)
    with open(os.path.join(log_dir, "metadata.tsv"), "w", encoding="utf-8") as f:
        f.write("".join(f"{str(label).replace(chr(9), ' ').replace(chr(10), ' ')}\n" for label in labels))
    variable = tf.Variable(np.asarray(embeddings, np.float32), name=name)
    path = tf.train.Checkpoint(embedding=variable).save(os.path.join(log_dir, "embedding.ckpt"))
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    embedding.metadata_path = "metadata.tsv"
    if thumbnails is not None and len(thumbnails):
        side = math.ceil(math.sqrt(len(thumbnails)))
        h, w = thumbnails.shape[1:3]
        sprite = np.ones((side * h, side * w, 3), np.float32)
        for i, thumb in enumerate(thumbnails):
            sprite[(i // side) * h:(i // side + 1) * h, (i % side) * w:(i % side + 1) * w] = thumb
        Image.fromarray(np.round(sprite * 255).astype(np.uint8)).save(os.path.join(log_dir, "sprite.png"))
        embedding.sprite.image_path = "sprite.png"
        embedding.sprite.single_image_dim.extend([w, h])
    projector.visualize_embeddings(log_dir, config)
    return path
