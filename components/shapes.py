"""`shapes`: the embedded default dataset, procedurally generated and deterministic.

Ten classes; the class is carried by the shape alone. Everything else varies at random, and is the
kind of nuisance SimSiam's augmentations teach invariance to: foreground and background colours
(independent of the class), scale, rotation, position, a colour gradient in the background,
pixel noise and a few small distractor dots. Images are drawn at 4x and downsampled with a
Lanczos filter, so edges are antialiased as in a photo.

It exists because real image datasets cannot be downloaded where this project is built and tested,
and the one real dataset that ships offline (scikit-learn's 8x8 digits) is so easy that an
untrained encoder's linear probe already reaches > 90 %. It is synthetic: numbers on it say the
pipeline works and learns, not how SimSiam does on photographs.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = ("disk", "ring", "square", "triangle", "plus", "star", "crescent", "tee", "ell", "bars")
VERSION = 2  # bump when the generator changes, so cached copies are regenerated


def _polygon(points, angle, scale, cx, cy):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + scale * (x * c - y * s), cy + scale * (x * s + y * c)) for x, y in points]


def _star_points(n=5, inner=0.42):
    pts = []
    for i in range(2 * n):
        r = 1.0 if i % 2 == 0 else inner
        a = math.pi * i / n - math.pi / 2
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


# Unit outlines (radius ~1) of the polygonal classes.
_OUTLINES = {
    "square": [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)],
    "triangle": [(0.0, -1.0), (0.87, 0.5), (-0.87, 0.5)],
    "plus": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1), (-0.3, 1),
             (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "star": _star_points(),
    "tee": [(-1, -0.9), (1, -0.9), (1, -0.35), (0.28, -0.35), (0.28, 1), (-0.28, 1), (-0.28, -0.35), (-1, -0.35)],
    "ell": [(-0.75, -1), (-0.2, -1), (-0.2, 0.45), (0.75, 0.45), (0.75, 1), (-0.75, 1)],
}


def _draw_shape(draw: ImageDraw.ImageDraw, name: str, cx, cy, radius, angle, fill, background):
    if name == "disk":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    elif name == "ring":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
        r = radius * 0.55
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=background)
    elif name == "crescent":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
        ox, oy = cx + 0.5 * radius * math.cos(angle), cy + 0.5 * radius * math.sin(angle)
        r = radius * 0.85
        draw.ellipse([ox - r, oy - r, ox + r, oy + r], fill=background)
    elif name == "bars":
        for offset in (-0.55, 0.55):
            bar = [(-1, offset - 0.25), (1, offset - 0.25), (1, offset + 0.25), (-1, offset + 0.25)]
            draw.polygon(_polygon(bar, angle, radius, cx, cy), fill=fill)
    else:
        draw.polygon(_polygon(_OUTLINES[name], angle, radius, cx, cy), fill=fill)


def _colour_pair(rng: np.random.Generator):
    """Random foreground/background colours that differ in luminance enough to see the shape."""
    while True:
        fg, bg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        lum = np.array([0.299, 0.587, 0.114])
        if abs(fg @ lum - bg @ lum) > 80:
            return fg, bg


def render(label: int, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """One uint8 (S, S, 3) image of class `label`."""
    scale = 4
    side = image_size * scale
    fg, bg = _colour_pair(rng)
    # Background: a linear gradient from bg to a nearby colour, in a random direction.
    bg2 = np.clip(bg + rng.uniform(-30, 30, 3), 0, 255)
    ys, xs = np.mgrid[0:side, 0:side] / side
    direction = rng.uniform(0, 2 * math.pi)
    t = (np.cos(direction) * xs + np.sin(direction) * ys)
    t = (t - t.min()) / (np.ptp(t) + 1e-9)
    canvas = (bg[None, None] * (1 - t[..., None]) + bg2[None, None] * t[..., None]).astype(np.uint8)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    # A few small distractor dots, drawn first so the shape can cover them.
    for _ in range(rng.integers(0, 2)):
        r = rng.uniform(0.03, 0.05) * side
        x, y = rng.uniform(r, side - r, 2)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.uniform(0, 255, 3)))
    radius = rng.uniform(0.28, 0.42) * side
    cx, cy = rng.uniform(radius, side - radius, 2)
    angle = rng.uniform(0, 2 * math.pi)
    mean_bg = tuple(int(v) for v in (bg + bg2) / 2)
    _draw_shape(draw, CLASS_NAMES[label], cx, cy, radius, angle, tuple(int(v) for v in fg), mean_bg)
    small = np.asarray(image.resize((image_size, image_size), Image.LANCZOS), np.float32)
    small += rng.normal(0, 4.0, small.shape)  # sensor-like noise
    return np.clip(small, 0, 255).astype(np.uint8)


def generate(num_images: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`num_images` images with balanced labels in a seeded random order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_images) % len(CLASS_NAMES))
    images = np.stack([render(int(y), image_size, rng) for y in labels])
    return images, labels.astype(np.int64)
