"""Image files: loading inputs, hashing pixels, writing pixel-only PNGs.

Pixels cross the R <-> Python bridge as PNG files (reticulate 1.28 converts
neither NumPy 2 arrays nor bytes), and images are identified by the sha256 of
their decoded RGB pixels so that metadata chunks do not change the hash.
"""

import hashlib
import os

from .errors import FileError, InputError

__all__ = ["load_image", "load_mask", "pixel_hash", "save_png"]


def _open(path, what):
    from PIL import Image
    if not isinstance(path, str) or not os.path.isfile(path):
        raise InputError("%s must be the path of an image file; %r does not exist." % (what, path))
    from PIL import ImageOps
    try:
        with Image.open(path) as im:
            im.load()
            # A JPEG upright as viewers show it (a phone photo's EXIF
            # orientation), as R reads its size (jpeg_size()). MPO: what
            # Pillow calls many phones' JPEGs.
            if im.format in ("JPEG", "MPO"):
                return ImageOps.exif_transpose(im)
            return im.copy()
    except Exception as e:  # noqa: BLE001
        raise InputError("Cannot read %s %s as an image (%s)." % (what, path, e)) from e


def _to_8bit(im):
    """16-bit greyscale (modes I;16*, and I as Pillow opens some 16-bit PNGs)
    scaled to 8-bit L: convert() would clip every value above 255 to white."""
    if not (im.mode.startswith("I;16") or im.mode == "I"):
        return im
    import numpy as np
    from PIL import Image
    a = np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8
    return Image.fromarray(a.astype(np.uint8), "L")


def load_image(path, what="image"):
    """The image at path as RGB (a transparent background becomes white)."""
    from PIL import Image
    im = _to_8bit(_open(path, what))
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba)
    return im.convert("RGB")


def load_mask(path):
    """The mask at path as 8-bit grey: white = repaint, black = keep."""
    return _to_8bit(_open(path, "mask")).convert("L")


def pixel_hash(image, kind="image"):
    """sha256 hex of the decoded RGB pixels (row-major, 3 bytes per pixel) of
    a PIL image or an image file. A file is hashed as generation reads it:
    as an image, with transparency composited onto white (load_image()), so
    two files that differ only in alpha, and so feed different pixels, hash
    differently; for kind = "mask", as a mask (grey, as load_mask() reads
    it), so a coloured mask file hashes to what generation recorded."""
    if isinstance(image, str):
        image = load_mask(image) if kind == "mask" else load_image(image)
    return hashlib.sha256(_to_8bit(image).convert("RGB").tobytes()).hexdigest()


def save_png(image, path):
    """Write image as a PNG with pixels only (no text chunks): R adds the
    metadata afterwards."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileError("Cannot write %s: directory %s does not exist." % (path, d))
    try:
        image.save(path, format="PNG")
    except OSError as e:
        raise FileError("Cannot write %s: %s" % (path, e.strerror or e)) from e
    return path
