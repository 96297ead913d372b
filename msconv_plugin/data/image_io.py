"""Reading images as BasicSR's datasets do, keeping 16-bit precision and failing with the file's name.

``basicsr.utils.imfrombytes(content, float32=True)`` decodes with OpenCV's ``IMREAD_COLOR``: grayscale images become
three equal channels, an alpha channel is dropped, 16-bit images are cut to their 8 high bits, and bytes that are
not an image give ``AttributeError: 'NoneType' object has no attribute 'astype'``. ``imfrombytes`` here keeps the
first two (the networks are RGB; an alpha channel is not part of what they restore), reads 16-bit images at full
precision (divided by 65535 instead of cut to 8 bits), and raises ``UnreadableImageError``. ``msconv_plugin``'s
datasets use it, and ``msconv_plugin.basicsr_fixes.datasets`` puts it into BasicSR's ``PairedImageDataset`` and
``SingleImageDataset``.
"""
import cv2
import numpy as np

IMREAD_FLAGS = {'color': cv2.IMREAD_COLOR, 'grayscale': cv2.IMREAD_GRAYSCALE, 'unchanged': cv2.IMREAD_UNCHANGED}


class UnreadableImageError(ValueError):
    """Bytes that OpenCV cannot decode as an image (a corrupt or truncated file, or not an image at all)."""


def imfrombytes(content, flag='color', float32=False, path=None):
    """Decode an image, as ``basicsr.utils.imfrombytes`` does but keeping 16 bits when ``float32`` is True.

    Args:
        content (bytes): Image bytes got from files or other streams.
        flag (str): 'color' (3 channels, BGR: grayscale replicated, alpha dropped), 'grayscale' or 'unchanged'.
            Default: 'color'.
        float32 (bool): Return float32 in [0, 1]: 8-bit images divided by 255, 16-bit ones by 65535 (at full
            precision). False returns what OpenCV decodes with ``flag`` (8 bits for 'color'), as BasicSR.
            Default: False.
        path (str | None): Named in the error message. Default: None.

    Returns:
        ndarray: The image, HWC (HW for 'grayscale').

    Raises:
        UnreadableImageError: ``content`` is not a decodable image.
    """
    flags = IMREAD_FLAGS[flag] | (cv2.IMREAD_ANYDEPTH if float32 else 0)
    img = cv2.imdecode(np.frombuffer(content, np.uint8), flags) if content else None
    if img is None:
        name = f'image {path}' if path else 'an image'
        raise UnreadableImageError(f'Cannot read {name}: its {len(content or b"")} bytes do not decode as an '
                                   'image (corrupt, truncated or not an image file).')
    if float32:
        img = img.astype(np.float32) / (np.iinfo(img.dtype).max if img.dtype.kind == 'u' else 1.)
    return img
