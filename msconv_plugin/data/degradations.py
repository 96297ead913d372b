"""Blur kernels (read from a file or drawn at random) and blurring, for ``SyntheticBlurDataset``.

The Gaussian families are BasicSR's (``basicsr.data.degradations``: isotropic/anisotropic, generalized, plateau); the
parameters are drawn here from a ``numpy.random.Generator`` so that validation can repeat them exactly. BasicSR has
no motion kernel; ``motion_kernel`` draws a camera-shake path.
"""
import math
from os import path as osp

import cv2
import numpy as np
from basicsr.data.degradations import bivariate_Gaussian, bivariate_generalized_Gaussian, bivariate_plateau

KERNEL_TYPES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso', 'motion')
BORDERS = ('reflect', 'symmetric', 'edge', 'wrap')
KERNEL_FILE_LAYOUT = ('a .mat file whose variable holds a 1xK (or Kx1) cell of 2-D kernels, a k x k x K array or '
                      'one k x k kernel, or a .npy file with a K x k x k array or one k x k kernel')

# Standard deviation (radians) of the change of direction between two of the 4k samples of a motion path: the
# path turns by about 0.1 * sqrt(4k) radians in all (1 rad for k = 25), a gently curved shake rather than a line.
MOTION_TURN = 0.1


def _check_kernel(kernel, where):
    if kernel.ndim != 2 or not np.issubdtype(kernel.dtype, np.number):
        raise ValueError(f'{where} is not a 2-D numeric kernel (shape {kernel.shape}, dtype {kernel.dtype}); '
                         f'expected {KERNEL_FILE_LAYOUT}.')
    if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f'{where} has an even size {kernel.shape}; expected odd sizes, so that the kernel has a '
                         'centre and blurring does not shift the image.')
    kernel = kernel.astype(np.float64)
    if not np.isfinite(kernel).all() or kernel.sum() <= 0:
        raise ValueError(f'{where} has non-finite values or does not sum to a positive number.')
    return (kernel / kernel.sum()).astype(np.float32)


def load_kernels(path, key='kernels'):
    """Read blur kernels from a ``.mat`` or ``.npy`` file and normalise each to sum 1.

    Layouts (``KERNEL_FILE_LAYOUT``): ``.mat`` (``scipy.io.loadmat``, MATLAB v5/v7 files): the variable ``key`` is a
    1×K or K×1 cell of 2-D kernels (sizes may differ), a k×k×K array (MATLAB's order) or one k×k kernel; ``.npy``:
    a K×k×k array or one k×k kernel. Kernel sizes must be odd.

    Args:
        path (str): Kernel file.
        key (str): Variable of a ``.mat`` file. Default: 'kernels'.

    Returns:
        list[ndarray]: K float32 kernels.

    Raises:
        FileNotFoundError, ValueError: naming the path (and the variable) and what was expected.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'kernel_file is not a file: {path}')
    ext = osp.splitext(path)[1].lower()
    if ext == '.mat':
        import scipy.io

        try:
            content = scipy.io.loadmat(path)
        except (NotImplementedError, ValueError, TypeError, OSError) as error:
            raise ValueError(f'Cannot read kernel_file {path} with scipy.io.loadmat ({error}); expected a MATLAB '
                             'v5/v7 .mat file (MATLAB: save(..., "-v7")).') from error
        variables = sorted(k for k in content if not k.startswith('__'))
        if key not in content:
            raise ValueError(f'kernel_file {path} has no variable {key!r} (it has: {", ".join(variables) or "none"}); '
                             'set kernel_key to the variable holding the kernels.')
        value = content[key]
        if value.dtype == object:  # a cell array
            kernels = [np.asarray(v) for v in value.ravel()]
        elif value.ndim == 3:
            kernels = list(np.moveaxis(value, -1, 0))
        else:
            kernels = [value]
        where = f'kernel_file {path} ({key!r})'
    elif ext == '.npy':
        try:
            value = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise ValueError(f'Cannot read kernel_file {path} with numpy.load ({error}); expected {KERNEL_FILE_LAYOUT}.'
                             ) from error
        kernels = list(value) if value.ndim == 3 else [value]
        where = f'kernel_file {path}'
    else:
        raise ValueError(f'kernel_file {path} is neither .mat nor .npy; expected {KERNEL_FILE_LAYOUT}.')
    if not kernels or any(k.size == 0 for k in kernels):
        raise ValueError(f'{where} holds no kernels (shape {value.shape}); expected {KERNEL_FILE_LAYOUT}.')
    return [_check_kernel(k, f'Kernel {i + 1} of {where}') for i, k in enumerate(kernels)]


def motion_kernel(kernel_size, length, rng):
    """A motion-blur kernel: a smooth random camera path of about ``length`` pixels, centred, summing to 1.

    The path starts in a random direction and turns a little at each of its 4·k samples (``MOTION_TURN``); its
    centre of mass is moved to the kernel's centre (the blur does not shift the image) and it is shrunk when it
    would leave the kernel. Samples are splatted bilinearly.

    Args:
        kernel_size (int): Odd kernel size k.
        length (float): Path length in pixels (0: no blur).
        rng (numpy.random.Generator): Source of the direction and the turns.

    Returns:
        ndarray: k×k float32 kernel.
    """
    n = 4 * kernel_size
    directions = rng.uniform(-math.pi, math.pi) + np.concatenate([[0.], np.cumsum(rng.normal(0, MOTION_TURN, n - 2))])
    steps = np.stack([np.cos(directions), np.sin(directions)], axis=1) * (length / (n - 1))
    points = np.concatenate([[[0., 0.]], np.cumsum(steps, axis=0)])
    points -= points.mean(axis=0)
    limit = (kernel_size - 1) / 2 - 1  # one pixel for the bilinear splat
    extent = np.abs(points).max()
    if extent > limit:
        points *= limit / extent
    points += (kernel_size - 1) / 2

    kernel = np.zeros((kernel_size, kernel_size))
    x0, y0 = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    fx, fy = points[:, 0] - x0, points[:, 1] - y0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            np.add.at(kernel, (y0 + dy, x0 + dx), wy * wx)
    return (kernel / kernel.sum()).astype(np.float32)


def _draw_beta(rng, beta_range):
    # as BasicSR's random_bivariate_generalized_Gaussian / random_bivariate_plateau: half below 1, half above
    return rng.uniform(beta_range[0], 1) if rng.uniform() < 0.5 else rng.uniform(1, beta_range[1])


def random_kernel(rng, kernel_list, kernel_prob, kernel_size, blur_sigma, betag_range, betap_range, motion_length):
    """Draw one blur kernel: its type from ``kernel_list`` with ``kernel_prob``, then its parameters uniformly.

    Args:
        rng (numpy.random.Generator): Source of every draw.
        kernel_list (list[str]): Types, from ``KERNEL_TYPES``.
        kernel_prob (list[float]): Their probabilities (normalised here).
        kernel_size (int): Odd kernel size.
        blur_sigma (list[float]): Range of the Gaussian standard deviations (each axis for anisotropic kernels).
        betag_range (list[float]): Shape range of the generalized Gaussian kernels.
        betap_range (list[float]): Shape range of the plateau kernels.
        motion_length (list[float]): Range of the motion path length in pixels.

    Returns:
        ndarray: float32 kernel, sums to 1.
    """
    prob = np.asarray(kernel_prob, dtype=np.float64)
    kernel_type = kernel_list[rng.choice(len(kernel_list), p=prob / prob.sum())]
    if kernel_type == 'motion':
        return motion_kernel(kernel_size, rng.uniform(*motion_length), rng)
    isotropic = kernel_type.endswith('iso') and not kernel_type.endswith('aniso')
    sig_x = rng.uniform(*blur_sigma)
    sig_y, theta = (sig_x, 0.) if isotropic else (rng.uniform(*blur_sigma), rng.uniform(-math.pi, math.pi))
    if kernel_type.startswith('generalized'):
        kernel = bivariate_generalized_Gaussian(kernel_size, sig_x, sig_y, theta, _draw_beta(rng, betag_range),
                                                isotropic=isotropic)
    elif kernel_type.startswith('plateau'):
        kernel = bivariate_plateau(kernel_size, sig_x, sig_y, theta, _draw_beta(rng, betap_range), isotropic=isotropic)
    else:
        kernel = bivariate_Gaussian(kernel_size, sig_x, sig_y, theta, isotropic=isotropic)
    return (kernel / kernel.sum()).astype(np.float32)


def blur(img, kernel, border='reflect'):
    """Convolve ``img`` with ``kernel`` (a true convolution, as MATLAB's ``conv2``/``imfilter(..., 'conv')``).

    Args:
        img (ndarray): HWC float32.
        kernel (ndarray): 2-D kernel with odd sizes.
        border (str): How the image is extended beyond its borders, a ``numpy.pad`` mode: 'reflect' (mirror without
            repeating the edge pixel, OpenCV's default), 'symmetric', 'edge' or 'wrap' (circular, as FFT-based
            deblurring assumes). Default: 'reflect'.

    Returns:
        ndarray: HWC float32, same size, C-ordered.
    """
    h, w = img.shape[:2]
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(img, ((ph, ph), (pw, pw), (0, 0)), mode=border)
    # cv2.filter2D correlates: flip the kernel to convolve.
    out = cv2.filter2D(padded, -1, np.ascontiguousarray(kernel[::-1, ::-1]), borderType=cv2.BORDER_CONSTANT)
    if out.ndim == 2:
        out = out[..., None]
    return np.ascontiguousarray(out[ph:ph + h, pw:pw + w])
