"""Image lists, checks, reading and per-sample randomness shared by the plugin's datasets."""
import random
import zlib
from os import path as osp

import numpy as np
from basicsr.data.data_util import paths_from_lmdb
from basicsr.utils import scandir

from .image_io import imfrombytes

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.pnm', '.tif', '.tiff', '.webp')

# What every file cv2 decodes for us starts with.
_SIGNATURES = {
    'PNG': (b'\x89PNG\r\n\x1a\n', ),
    'JPEG': (b'\xff\xd8\xff', ),
    'BMP': (b'BM', ),
    'TIFF': (b'II*\x00', b'MM\x00*'),
    'WebP': (b'RIFF', ),
    'PPM/PGM': (b'P2', b'P3', b'P5', b'P6'),
}
# A PNG ends with its IEND chunk and a JPEG with its end-of-image marker; a truncated download lacks them. The last
# KiB leaves room for the padding some writers append.
_END_MARKERS = {'PNG': b'IEND', 'JPEG': b'\xff\xd9'}
_HEAD, _TAIL = 16, 1024
_MAX_LISTED = 10
_FORMATS = ', '.join(list(_SIGNATURES)[:-1]) + f' or {list(_SIGNATURES)[-1]}'

COLORS = (None, 'rgb', 'gray')


def image_problem(head, tail):
    """Why bytes cannot hold a complete image, or None when they look like one.

    Reads only the first and last bytes, so checking a whole training set costs one short read per file.

    Args:
        head (bytes): The first bytes (16 are enough).
        tail (bytes): The last bytes (up to 1 KiB).

    Returns:
        str | None: The problem, or None.
    """
    if not head:
        return 'the file is empty'
    image_format = next((name for name, signatures in _SIGNATURES.items() if head.startswith(signatures)), None)
    if image_format is None:
        return f'not a {_FORMATS} image (it starts with {bytes(head[:8])!r})'
    marker = _END_MARKERS.get(image_format)
    if marker is not None and marker not in tail:
        return f'a truncated {image_format} file (no {marker!r} marker at its end)'
    return None


def _file_problem(path):
    try:
        with open(path, 'rb') as f:
            head = f.read(_HEAD)
            f.seek(max(0, f.seek(0, 2) - _TAIL))
            tail = f.read()
    except OSError as error:
        return f'cannot be opened ({error.strerror or error})'
    return image_problem(head, tail)


def _lmdb_problems(folder, keys):
    import lmdb

    try:
        env = lmdb.open(folder, readonly=True, lock=False, readahead=False)
    except lmdb.Error as error:
        if 'already open in this process' in str(error):
            return  # a dataset of this process reads it: it was checked when that dataset was built
        raise ValueError(f'Cannot open the lmdb database {folder}: {error}') from error
    with env.begin(buffers=True) as txn:
        for key in keys:
            value = txn.get(key.encode('ascii'))
            problem = 'no such key in the database' if value is None else image_problem(
                bytes(value[:_HEAD]), bytes(value[-_TAIL:]))
            if problem:
                yield key, problem
    env.close()


def check_images(paths, folder, io_backend, key='dataroot_gt', name=None):
    """Raise ValueError listing the images of ``paths`` that are missing, empty, not images or truncated.

    Args:
        paths (list[str]): Image paths (disk) or keys (lmdb).
        folder (str): The data root they come from (named in the error).
        io_backend (str): 'disk' or 'lmdb'.
        key (str): Option naming the data root, for the message. Default: 'dataroot_gt'.
        name (str): Dataset name, for the message. Default: None.
    """
    if io_backend == 'lmdb':
        problems = list(_lmdb_problems(folder, paths))
    else:
        problems = [(path, problem) for path in paths for problem in [_file_problem(path)] if problem]
    if problems:
        listed = '\n'.join(f'  {path}: {problem}' for path, problem in problems[:_MAX_LISTED])
        more = f'\n  ... and {len(problems) - _MAX_LISTED} more' if len(problems) > _MAX_LISTED else ''
        raise ValueError(f'{len(problems)} of {len(paths)} images in {key} of dataset {name!r} ({folder}) cannot be '
                         f'read; expected complete {_FORMATS} images:\n{listed}{more}')


def scan_images(opt, key='dataroot_gt', client_key='gt'):
    """The images of one data root, checked, in the three modes of BasicSR's datasets.

    1. 'lmdb': ``io_backend: {type: lmdb}``; the data root is a ``.lmdb`` folder with its ``meta_info.txt``. The
       lmdb backend options (``db_paths``, ``client_keys``) are set in ``opt['io_backend']``.
    2. 'meta_info_file': other backends with ``meta_info_file`` set: image names relative to the data root, one per
       line (first word).
    3. 'folder': the image files (by extension) in the data root and its sub-folders.

    Every image is checked (``check_images``) unless ``check_images: false``: a wrong path, an empty folder or a
    broken file stops the run when the dataset is built, with the path and what was expected.

    Args:
        opt (dict): Dataset options: ``name``, ``io_backend``, ``meta_info_file``, ``check_images`` and ``key``.
        key (str): Option holding the data root. Default: 'dataroot_gt'.
        client_key (str): lmdb client key. Default: 'gt'.

    Returns:
        tuple[list[str], list[str]]: Paths (disk) or keys (lmdb), and names: the path relative to the data root
        without extension (the lmdb key), the same for a folder and its lmdb copy.
    """
    folder, name, io_backend = opt[key], opt.get('name'), opt['io_backend']['type']
    if io_backend == 'lmdb':
        if not folder.endswith('.lmdb') or not osp.isfile(osp.join(folder, 'meta_info.txt')):
            raise FileNotFoundError(f'{key} of dataset {name!r} is not an lmdb folder (name ending in .lmdb, with '
                                    f'data.mdb and meta_info.txt, as scripts/prepare_dataset.py writes): {folder}')
        opt['io_backend']['db_paths'] = [folder]
        opt['io_backend']['client_keys'] = [client_key]
        paths = paths_from_lmdb(folder)
        names = list(paths)
    else:
        if not osp.isdir(folder):
            raise FileNotFoundError(f'{key} of dataset {name!r} is not a folder: {folder}')
        if opt.get('meta_info_file') is not None:
            if not osp.isfile(opt['meta_info_file']):
                raise FileNotFoundError(f'meta_info_file of dataset {name!r} is not a file: {opt["meta_info_file"]}')
            with open(opt['meta_info_file']) as fin:
                relative = [line.split()[0] for line in fin if line.strip()]
        else:
            relative = sorted(v for v in scandir(folder, recursive=True) if v.lower().endswith(IMG_EXTENSIONS))
        paths = [osp.join(folder, v) for v in relative]
        names = [osp.splitext(v)[0] for v in relative]
    if not paths:
        raise ValueError(f'No images in {key} of dataset {name!r}: {folder} (looked for {", ".join(IMG_EXTENSIONS)}).')
    if opt.get('check_images', True):
        check_images(paths, folder, io_backend, key, name)
    return paths, names


def check_color(opt):
    """The ``color`` option: None or 'rgb' (3 channels) or 'gray' (1 channel); anything else is a ValueError."""
    color = opt.get('color')
    if color not in COLORS:
        raise ValueError(f'color of dataset {opt.get("name")!r} must be one of {COLORS}, got {color!r}.')
    return color


def read_image(file_client, path, client_key, color=None):
    """Read one image: HWC, BGR (or one gray channel), [0, 1], float32 (16-bit images at full precision).

    Raises:
        UnreadableImageError: naming the path when the bytes do not decode.
    """
    img = imfrombytes(file_client.get(path, client_key), 'grayscale' if color == 'gray' else 'color', float32=True,
                      path=path)
    return img[..., None] if img.ndim == 2 else img


def random_crop(img, patch_size, path):
    """A random ``patch_size`` square of ``img`` (C-ordered: BasicSR's augment flips in place with OpenCV)."""
    h, w = img.shape[:2]
    if h < patch_size or w < patch_size:
        raise ValueError(f'Image {path} ({h}x{w}) is smaller than gt_size {patch_size}.')
    top, left = random.randint(0, h - patch_size), random.randint(0, w - patch_size)
    return np.ascontiguousarray(img[top:top + patch_size, left:left + patch_size])


def sample_rng(opt, name, *extra):
    """The random generator of one sample.

    Training draws a fresh generator from Python's ``random``, which PyTorch reseeds in every data-loader worker at
    every epoch (BasicSR's ``worker_init_fn`` reseeds NumPy's global generator to the same state each epoch, so its
    draws would repeat). Validation and test seed it with ``(seed, CRC-32 of the image name, *extra)``: an image
    gets the same degradation on every run, in any order, with any number of workers, on any machine, and from its
    folder or its lmdb copy.

    Args:
        opt (dict): Dataset options: ``phase`` and ``seed`` (default 0).
        name (str): Image name (relative path without extension, or lmdb key).
        extra (int): More seed words (a kernel index).

    Returns:
        numpy.random.Generator
    """
    if opt['phase'] == 'train':
        return np.random.default_rng(random.getrandbits(64))
    return np.random.default_rng([opt.get('seed', 0), zlib.crc32(name.encode('utf-8')), *extra])


def level_range(opt, fixed_key, range_key, required):
    """A noise level given either as ``fixed_key: s`` or ``range_key: [lo, hi]`` (on the 0-255 scale).

    Returns:
        tuple[float, float]: (lo, hi); (s, s) for a fixed level; (0, 0) when neither is given and not required.
    """
    name, fixed, span = opt.get('name'), opt.get(fixed_key), opt.get(range_key)
    if fixed is not None and span is not None:
        raise ValueError(f'Dataset {name!r}: give {fixed_key} or {range_key}, not both.')
    if fixed is None and span is None:
        if required:
            raise ValueError(f'Dataset {name!r} needs {fixed_key} (a number, 0-255 scale) or {range_key} ([lo, hi]).')
        return 0., 0.
    if fixed is not None:
        span = [fixed, fixed]
    if (not isinstance(span, (list, tuple)) or len(span) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in span)
            or not 0 <= span[0] <= span[1]):
        raise ValueError(f'Dataset {name!r}: {fixed_key if fixed is not None else range_key} must be a number >= 0 '
                         f'or [lo, hi] with 0 <= lo <= hi, got {fixed if fixed is not None else span!r}.')
    return float(span[0]), float(span[1])


def add_gaussian_noise(img, sigma, rng, clip=False):
    """``img`` plus white Gaussian noise of standard deviation ``sigma`` / 255, independent per pixel and channel.

    Args:
        img (ndarray): HWC, [0, 1], float32.
        sigma (float): Standard deviation on the 0-255 scale.
        rng (numpy.random.Generator): Source of the noise.
        clip (bool): Clip the result to [0, 1]. Default: False (the usual protocol of the denoising benchmarks).

    Returns:
        ndarray: float32, same shape.
    """
    noisy = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma / 255.)
    return np.clip(noisy, 0, 1) if clip else noisy
