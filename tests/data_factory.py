"""Small data the tests (and benchmarks) make: image folders with every awkward kind of file, and
tiny *prepared* TFDS data sets written through the real TFDS builders (no download needed)."""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image


def _image(size, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    channels = {"RGB": 3, "RGBA": 4, "CMYK": 4, "L": 1}[mode]
    array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(array[..., 0] if channels == 1 else array, mode=mode)


def encoded(size=(40, 30), seed: int = 0, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    _image(size, seed, mode).save(buffer, format=fmt)
    return buffer.getvalue()


def awkward_files() -> dict[str, tuple[bytes, str]]:
    """file name -> (bytes, expected outcome: "keep", "convert" or "skip:<reason start>")."""
    jpeg = encoded((64, 48), 1, "JPEG")
    palette = io.BytesIO()
    _image((33, 21), 3).convert("P", palette=Image.Palette.ADAPTIVE).save(palette, format="PNG")
    sixteen = io.BytesIO()
    Image.fromarray((np.arange(600, dtype=np.uint16).reshape(20, 30) * 100), mode="I;16").save(sixteen, format="PNG")
    gif = io.BytesIO()
    frames = [_image((24, 24), s).convert("P") for s in range(3)]
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return {
        "ok.jpg": (jpeg, "keep"),
        "gray.png": (encoded((20, 25), 2, "PNG", "L"), "keep"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "skip:truncated or corrupt"),
        "corrupt.jpg": (jpeg[:200] + bytes(range(256)) * 4, "skip:truncated or corrupt"),
        "empty.jpg": (b"", "skip:empty file"),
        "notes.png": (b"this is not an image\n" * 10, "skip:not an image"),
        "cmyk.jpg": (encoded((30, 30), 4, "JPEG", "CMYK"), "convert"),
        "rgba.png": (encoded((26, 18), 5, "PNG", "RGBA"), "convert"),
        "palette.png": (palette.getvalue(), "convert"),
        "sixteen-bit.png": (sixteen.getvalue(), "convert"),
        "animated.gif": (gif.getvalue(), "convert"),
        "bitmap.bmp": (encoded((17, 23), 6, "BMP"), "convert"),
        "photo.webp": (encoded((28, 28), 7, "WEBP"), "convert"),
    }


def huge_jpeg(side: int = 10_000) -> bytes:
    """A side x side JPEG (smooth, so encoding is quick and the file small)."""
    ramp = np.linspace(0, 255, side, dtype=np.float32).astype(np.uint8)
    image = Image.fromarray(np.broadcast_to(ramp[None, :, None], (side, side, 3)).copy())
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=50)
    return buffer.getvalue()


def write_awkward_folder(root: str, with_huge: bool = True) -> dict[str, str]:
    """Class folders with awkward names, each awkward file, an empty class folder and a stray
    top-level file. Returns {path: expected outcome}."""
    expected = {}
    files = awkward_files()
    classes = ["sea lion", "café ☕"]
    for i, (name, (data, outcome)) in enumerate(sorted(files.items())):
        folder = os.path.join(root, classes[i % 2])
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(data)
        expected[path] = outcome
    # Enough good images per class for every split of a fixed hash split to be non-empty.
    for c, cls in enumerate(classes):
        for j in range(12):
            path = os.path.join(root, cls, f"good-{j}.png")
            with open(path, "wb") as f:
                f.write(encoded((32, 32), 100 + 20 * c + j))
            expected[path] = "keep"
    if with_huge:
        path = os.path.join(root, classes[0], "huge.jpg")
        with open(path, "wb") as f:
            f.write(huge_jpeg())
        expected[path] = "convert"
    os.makedirs(os.path.join(root, "empty class"), exist_ok=True)
    expected[os.path.join(root, "empty class")] = "skip:empty class folder"
    stray = os.path.join(root, "README.txt")
    with open(stray, "w") as f:
        f.write("not in a class folder")
    expected[stray] = "skip:not inside a class sub-folder"
    return expected


def write_image_folder(root: str, count: int, classes: int = 0, size: int = 24, fmt: str = "PNG",
                       start: int = 0) -> None:
    """`count` small images; in `classes` class sub-folders, or a nested unlabelled tree if 0.
    `start`: the first image's number (a later call with a higher start adds new images)."""
    for i in range(start, start + count):
        folder = os.path.join(root, f"class{i % classes}" if classes else f"part{i % 7}/sub{i % 3}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"img{i:06d}.{fmt.lower()}"), "wb") as f:
            f.write(encoded((size, size), i, fmt))


# ---- tiny prepared TFDS data sets, through the real builders ---------------------------------

TFDS_LAYOUTS = {  # split -> number of examples (real: tf_flowers 3,670; stl10 5k/8k/100k; cifar10 50k/10k)
    "tf_flowers": {"train": 40},
    "stl10": {"train": 20, "test": 12, "unlabelled": 30},
    "cifar10": {"train": 30, "test": 12},
}


def prepare_tfds(name: str, data_dir: str) -> None:
    """Prepares `name` in `data_dir` with the real builder's features, version and file layout,
    generating a few random images instead of downloading the originals."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import registered

    real = tfds.builder_cls(name)
    layout = TFDS_LAYOUTS[name]

    with registered.skip_registration():
        class Tiny(real):  # type: ignore[misc, valid-type]
            url_infos = None  # nothing is downloaded
            def _split_generators(self, dl_manager):
                return {split: self._examples(split, n) for split, n in layout.items()}

            def _examples(self, split, n):
                features = self.info.features
                height, width = features["image"].shape[:2]
                size = (width, height) if width else (41, 30)  # tf_flowers images vary in size
                fmt = "JPEG" if name == "tf_flowers" else "PNG"
                for i in range(n):
                    label = -1 if split == "unlabelled" else i % features["label"].num_classes
                    example = {"image": io.BytesIO(encoded(size, i + 1000 * len(split), fmt)), "label": label}
                    if "id" in features:
                        example["id"] = f"{split}_{i:05d}"
                    yield f"{split}_{i}", example

    Tiny.name = name
    Tiny(data_dir=data_dir).download_and_prepare()


def write_transformed(path: str, images, labels=None) -> None:
    """uint8 (S, S, 3) images in Transform's output format (labels default to i % 10)."""
    import tensorflow as tf

    from simsiam_tfx.features import to_transformed_example
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i, image in enumerate(images):
            writer.write(to_transformed_example(image, i % 10 if labels is None else int(labels[i])))


def write_random_transformed(path: str, num_images: int, image_size: int, seed: int = 0) -> None:
    """Random uint8 images in Transform's output format."""
    rng = np.random.default_rng(seed)
    write_transformed(path, rng.integers(0, 256, (num_images, image_size, image_size, 3), dtype=np.uint8))


def encode_array(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    """Encode a uint8 array as an image file in memory with Pillow."""
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
