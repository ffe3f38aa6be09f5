"""Thumbnails for images, made once when an upload finishes.

What counts as an image is what Pillow recognises from the bytes, never the file's name. Only a
few common formats are opened, and a picture of more than `MAX_PIXELS` is not decoded at all
(its header is read lazily first), so a crafted "decompression bomb" costs nothing. Anything
Pillow cannot read simply gets no thumbnail; the file itself is stored either way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

log = logging.getLogger("corridor.files")

THUMBNAIL_BOX = (320, 320)
MAX_PIXELS = 50_000_000  # an 8,000 by 6,000 photo; beyond that no thumbnail
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")


@dataclass(frozen=True)
class Picture:
    """An image's pixel size, and whether a thumbnail was written."""

    width: int
    height: int
    thumbnail: bool


NOT_A_PICTURE = Picture(0, 0, False)


def make_thumbnail(source: Path, target: Path) -> Picture:
    """Write a JPEG thumbnail of `source` to `target` if it is an image (blocking: run it in a
    worker thread); returns what was found."""
    try:
        with Image.open(source, formats=FORMATS) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                return Picture(width, height, False)
            image.draft("RGB", THUMBNAIL_BOX)  # JPEG decodes at a fraction of its size: far faster
            small = ImageOps.exif_transpose(image).convert("RGB")
            small.thumbnail(THUMBNAIL_BOX)
            target.parent.mkdir(mode=0o700, exist_ok=True)
            partial = target.with_suffix(".tmp")
            small.save(partial, "JPEG", quality=80)
            os.replace(partial, target)
            return Picture(width, height, True)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # not an image, or a broken one
        if not isinstance(exc, Image.UnidentifiedImageError):
            log.warning("no thumbnail for %s: %s", source.name, exc)
        return NOT_A_PICTURE
