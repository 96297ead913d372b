"""The user's files come first: inference never writes onto an input, never re-reads its own outputs, never
overwrites a file unless asked; zoo weights are verified before use; images are read as the camera meant them.

Used by ``msconv_plugin.inference`` (and, through its ``build_model``, ``scripts/export_onnx.py``).
"""
import hashlib
import os
import os.path as osp
import tempfile

import cv2
import numpy as np

from msconv_plugin.cli import UserError

# EXIF orientation (tag 0x0112) -> how to turn the stored pixels upright (https://exiftool.org/TagNames/EXIF.html).
_EXIF_ORIENTATION = 0x0112
_UPRIGHT = {
    2: lambda img: img[:, ::-1],
    3: lambda img: img[::-1, ::-1],
    4: lambda img: img[::-1],
    5: lambda img: img.swapaxes(0, 1),
    6: lambda img: np.rot90(img, -1),
    7: lambda img: np.rot90(img, 1)[::-1],
    8: lambda img: np.rot90(img, 1),
}


def sha256_of(path, chunk=1 << 20):
    """The sha256 of a file (hex)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path, expected, source):
    """Raise ``UserError`` when the file ``path`` does not have the sha256 ``expected`` (None: nothing recorded,
    nothing checked). ``source`` names who records it (e.g. "zoo entry 'X' of model_zoo.json")."""
    if expected and sha256_of(path) != expected.lower():
        raise UserError(f'{path} does not match the sha256 recorded by {source} ({expected[:12]}…): the file is '
                        'damaged or was replaced. Restore it (git checkout, or download it again) before using it.')


def upright(img, path):
    """``img`` as ``cv2.imread(path, IMREAD_UNCHANGED)`` gives it, turned as the file's EXIF orientation says
    (OpenCV applies it only when it converts the image; photos from phones and cameras carry it)."""
    from PIL import Image

    try:
        with Image.open(path) as pil:
            orientation = pil.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # no EXIF where Pillow cannot read the file: OpenCV did
        return img
    return np.ascontiguousarray(_UPRIGHT[orientation](img)) if orientation in _UPRIGHT else img


def is_grey_alpha(path):
    """Whether the file holds grey + alpha (Pillow modes LA / La); OpenCV reads such images as BGRA."""
    from PIL import Image

    try:
        with Image.open(path) as pil:
            return pil.mode in ('LA', 'La')
    except Exception:
        return False


def write_image(path, img):
    """Write ``img`` (grey, grey+alpha, BGR or BGRA; 8 or 16 bit) as PNG; raise ``OSError`` naming a failure.

    An 8-bit grey+alpha image is written as grey+alpha (by Pillow: OpenCV writes 1, 3 or 4 channels only); a
    16-bit one as BGRA with equal colour channels, since neither library writes 16-bit grey+alpha.
    """
    from PIL import Image

    if img.ndim == 3 and img.shape[2] == 2:
        if img.dtype == np.uint8:
            Image.fromarray(img, 'LA').save(path)
            return
        img = np.concatenate([img[..., :1].repeat(3, axis=2), img[..., 1:]], axis=2)
    if not cv2.imwrite(path, img):
        raise OSError(f'Cannot write {path}.')


def plan_outputs(images, outputs, output_folder, suffix, overwrite=False):
    """Which inputs to run and where to write them, so that no file of the user's is lost.

    1. Inputs in the output folder named ``*_<suffix>.png`` are outputs of an earlier run: skipped, with a line
       each (running them again would enlarge them again).
    2. An output that is one of the inputs (also through a link) is refused, ``--overwrite`` or not.
    3. An output that already exists is refused unless ``overwrite``.

    Args:
        images (list[str]): Input images.
        outputs (list[str]): Their output files (same order).
        output_folder (str): The output folder.
        suffix (str): The output names' suffix.
        overwrite (bool): Replace existing outputs. Default: False.

    Returns:
        tuple[list[str], list[str]]: The inputs to run and their outputs.
    """
    folder = osp.realpath(output_folder)
    kept = []
    for image, output in zip(images, outputs):
        if osp.dirname(osp.realpath(image)) == folder and image.endswith(f'_{suffix}.png'):
            print(f'Skipping {image}: an output of an earlier run (*_{suffix}.png in the output folder).', flush=True)
        else:
            kept.append((image, output))
    if not kept:
        raise UserError(f'Nothing to do: every input is an output of an earlier run (*_{suffix}.png in the output '
                        'folder). Give other inputs, or another --suffix.')
    inputs = {osp.realpath(image) for image, _ in kept}
    onto_inputs = [output for _, output in kept if osp.realpath(output) in inputs]
    if onto_inputs:
        raise UserError(f'The output {onto_inputs[0]} would replace an input image'
                        f'{f" (and {len(onto_inputs) - 1} more)" if len(onto_inputs) > 1 else ""}: choose another '
                        'output folder (-o) or --suffix.')
    existing = [output for _, output in kept if osp.exists(output)]
    if existing and not overwrite:
        listed = ', '.join(existing[:5]) + (f' … and {len(existing) - 5} more' if len(existing) > 5 else '')
        raise UserError(f'{len(existing)} output file(s) exist already: {listed}. Give --overwrite to replace them, '
                        'or choose another output folder (-o) or --suffix.')
    return [image for image, _ in kept], [output for _, output in kept]


def check_writable(folder):
    """Create ``folder`` and make sure files can be written in it; raise ``UserError`` saying why not."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f'Cannot write to the output folder {folder} ({error.strerror or error}): choose another '
                        'one (-o) or fix its permissions.') from None
