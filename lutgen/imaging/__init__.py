"""Reading and writing images: JPEG, PNG, TIFF and WebP, at 8 and 16 bits per channel.

Every image in lutgen goes through here. :func:`load_image` returns an :class:`ImageData`:

- ``rgb``: shape ``(H, W, 3)``, ``uint8`` (8-bit sources) or ``uint16`` (16-bit PNG and TIFF),
  already turned upright according to the EXIF orientation. Grey images are repeated into three
  channels; palette, CMYK and other modes are converted to RGB.
- ``alpha``: shape ``(H, W)``, same dtype as ``rgb``, or ``None`` for opaque images.
- ``icc_profile``: the embedded RGB ICC profile (bytes) or ``None``. A profile that does not
  describe RGB data (grey, CMYK) is dropped, since the pixels returned are RGB.
- ``exif``: the EXIF block (bytes beginning with ``Exif\\0\\0``) with its orientation reset to 1,
  or ``None``.

The arrays may be read-only views of the decoded data; copy them before changing them in place.

Pillow decodes everything except 16-bit colour PNG and TIFF, which it would cut to 8 bits; those
pixels come from OpenCV, while Pillow still reads their header and metadata.

:func:`save_image` writes atomically and picks the format from the extension. 16-bit data stays
16-bit in PNG and TIFF and is rounded to 8 bits for JPEG and WebP. ICC profile, EXIF and alpha are
kept wherever the format can hold them (JPEG has no alpha). Pillow writes JPEG, WebP and 8-bit PNG;
OpenCV encodes TIFF and 16-bit PNG, and the ICC profile and EXIF are then added to those files here.
XMP and IPTC metadata are not carried over. Pixels graded into a :func:`rgbx_buffer` (Pillow's own
four-bytes-a-pixel layout) and given as its first three channels are written without a copy.

Before any pixel is decoded, an input must be a regular file (never a FIFO, device or folder) and
its header must claim at most :data:`MAX_PIXELS` pixels; :func:`image_size` reads the upright size
from the header alone, with the same checks. Every refusal is an :class:`~lutgen.errors.ImageError`
whose message is one sentence naming the file; nothing the decoders print reaches the user.

Modules: ``common`` (formats, :class:`ImageData`), ``limits`` (the size limit), ``reading``,
``writing``, ``metadata`` (EXIF and ICC), ``finding`` (files and folders given by the user),
``memory`` (buffers kept from one photo to the next when grading many).
"""

from lutgen.imaging.common import IMAGE_EXTENSIONS, ImageData
from lutgen.imaging.finding import find_images
from lutgen.imaging.limits import MAX_PIXELS
from lutgen.imaging.reading import image_size, load_image, load_rgb_float
from lutgen.imaging.writing import check_output_path, rgbx_buffer, save_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageData",
    "check_output_path",
    "find_images",
    "image_size",
    "load_image",
    "load_rgb_float",
    "rgbx_buffer",
    "save_image",
]
