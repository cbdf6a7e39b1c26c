"""Checks one encoded image before it enters the pipeline: keep it, convert it, or skip it (with why).

Every image ExampleGen emits is a complete JPEG or 8-bit PNG that TensorFlow's decoders read, so
Transform (one TF graph over the whole data set) can never fail on a bad file and lose the run:

- kept byte for byte: fully decodable JPEG/PNG in RGB or grayscale, no side above MAX_SIDE;
- converted to PNG: CMYK, palette, RGBA, 16-bit and float images, GIF (first frame), BMP, WebP,
  TIFF..., and images larger than MAX_SIDE (downscaled: Transform resizes them anyway);
- skipped with a reason: empty, not an image or a format outside SUPPORTED_FORMATS, truncated or
  corrupt, or too large to decode (judged from the header, before any pixel is decoded).

Nothing a file can do escapes `check` as an exception: whatever PIL raises (MemoryError and
NotImplementedError included) becomes a named skip, so one crafted file never fails ExampleGen.
"""
from __future__ import annotations

import io
import warnings
from typing import Optional

import numpy as np
from PIL import Image, ImageFile

# Longest side kept. Far above any training size (32-224 px) yet bounds a stored example to a few MB.
MAX_SIDE = 1024
# Larger images are refused rather than decoded. JPEGs are decoded at a reduced scale (`draft`), so
# they may be this large; every other format is decoded at full size and converted (several bytes
# per pixel at once), so it may have at most MAX_DECODED_PIXELS, judged from the header.
MAX_PIXELS = 16_000 * 16_000
MAX_DECODED_PIXELS = 40_000_000
PASS_THROUGH_FORMATS = ("JPEG", "PNG")
# Only these are opened: PIL's other plugins (EPS runs Ghostscript, for one) never see our input.
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")
# Leading bytes of JPEG, PNG, GIF, BMP, TIFF: such a file PIL cannot open is damaged, not foreign.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
PASS_THROUGH_MODES = ("RGB", "L")

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, not a grey-padded image
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL's bomb guard at our limit (its default would refuse 10k x 10k)


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float images -> 8-bit grayscale, scaled (not clipped)."""
    array = np.asarray(image)
    if image.mode.startswith("I;16") or (image.mode == "I" and array.max(initial=0) > 255):
        array = array.astype(np.float32) / (65535.0 if array.max(initial=0) <= 65535 else float(array.max()))
    elif image.mode == "F":
        low, high = float(array.min(initial=0.0)), float(array.max(initial=1.0))
        array = (array - low) / max(high - low, 1e-12)
    else:
        array = array.astype(np.float32) / 255.0
    return Image.fromarray(np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8), mode="L")


def _to_rgb_or_gray(image: Image.Image) -> Image.Image:
    if image.mode in PASS_THROUGH_MODES:
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _to_8bit(image)
    if image.mode in ("LA", "La"):
        return image.convert("L")  # alpha dropped, as Transform's decoder would
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, P, PA, RGBA, RGBa, 1 ...


def check(data: bytes) -> tuple[Optional[bytes], str]:
    """Returns (image bytes to keep, "") or (None, reason). `reason` is one line."""
    if not data:
        return None, "empty file"
    try:
        return _check(data)
    except MemoryError:
        return None, "too large to decode (out of memory)"
    except Exception as e:  # noqa: BLE001  (a crafted file must never fail the run; it is named instead)
        message = " ".join(str(e).split()) or type(e).__name__
        return None, f"unreadable image ({type(e).__name__}: {message[:120]})"


def _check(data: bytes) -> tuple[Optional[bytes], str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    return None, f"too large ({width}x{height} pixels; the limit is {MAX_PIXELS:,})"
                fmt, animated = image.format, getattr(image, "is_animated", False)
                if fmt == "JPEG" and max(width, height) > MAX_SIDE:
                    # Decode at a reduced scale (1/2..1/8): a 10k x 10k JPEG needs far less memory.
                    image.draft(image.mode, (MAX_SIDE, MAX_SIDE))
                if image.size[0] * image.size[1] > MAX_DECODED_PIXELS:
                    return None, (f"too large to decode ({width}x{height} {fmt}; the limit is "
                                  f"{MAX_DECODED_PIXELS:,} decoded pixels)")
                image.load()  # decodes every byte: truncation and corruption fail here
                if (fmt in PASS_THROUGH_FORMATS and image.mode in PASS_THROUGH_MODES and not animated
                        and max(width, height) <= MAX_SIDE):
                    return data, ""
                converted = _to_rgb_or_gray(image)
                if max(converted.size) > MAX_SIDE:
                    converted.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
                out = io.BytesIO()
                converted.save(out, format="PNG")
                return out.getvalue(), ""
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None, "too large (decompression bomb guard)"
    except Image.UnidentifiedImageError:
        if data.startswith(_SIGNATURES) or data[8:12] == b"WEBP":
            return None, "truncated or corrupt image (unreadable header)"
        return None, f"not an image (unknown or unsupported format; supported: {', '.join(SUPPORTED_FORMATS)})"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        # PIL raises these for truncated and corrupt data; its message says which.
        message = " ".join(str(e).split()) or type(e).__name__
        return None, f"truncated or corrupt image ({message[:120]})"
