import os.path as osp
import random

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from scipy import ndimage
from skimage import data as skimage_data

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from basicsr.data import build_dataset
from basicsr.utils.registry import DATASET_REGISTRY

from msconv_plugin.data.degradations import KERNEL_TYPES, blur, load_kernels, motion_kernel, random_kernel
from msconv_plugin.data.synthetic_blur_dataset import SyntheticBlurDataset

SHARED_KERNELS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '..', 'shared', 'data', 'kernels',
                          'kernels_12.mat')
GENERATOR = {'kernel_list': list(KERNEL_TYPES), 'kernel_prob': [1] * len(KERNEL_TYPES), 'kernel_size': 15,
             'blur_sigma': [0.5, 3], 'betag_range': [0.5, 4], 'betap_range': [1, 2], 'motion_length': [3, 12]}


def some_kernels():
    rng = np.random.default_rng(0)
    return [motion_kernel(15, 10, rng), motion_kernel(15, 6, rng), random_kernel(rng, **{**GENERATOR,
                                                                                          'kernel_list': ['aniso'],
                                                                                          'kernel_prob': [1]})]


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'sharp'
    root.mkdir()
    for name, img in (('a.png', skimage_data.astronaut()[:64, :80]), ('b.png', skimage_data.coffee()[:48, :64]),
                      ('c.png', skimage_data.chelsea()[:56, :56])):
        cv2.imwrite(str(root / name), np.ascontiguousarray(img[..., ::-1]))
    return root


@pytest.fixture
def kernel_npy(tmp_path):
    path = tmp_path / 'kernels.npy'
    np.save(path, np.stack(some_kernels()))
    return path


def make_dataset(root, phase='val', **opt):
    return build_dataset({'name': 'blurry', 'type': 'SyntheticBlurDataset', 'dataroot_gt': str(root),
                          'io_backend': {'type': 'disk'}, 'phase': phase, 'scale': 1, **opt})


def to_hwc(tensor):
    return tensor.numpy().transpose(1, 2, 0)


# Kernels


def test_kernel_files_mat_and_npy(tmp_path):
    kernels = some_kernels()
    cell = np.empty((1, 3), dtype=object)
    cell[0, :] = kernels
    scipy.io.savemat(tmp_path / 'cell.mat', {'kernels': cell})
    scipy.io.savemat(tmp_path / 'column.mat', {'blur': cell.T})
    scipy.io.savemat(tmp_path / 'array.mat', {'kernels': np.stack(kernels, axis=-1)})  # MATLAB's k x k x K
    scipy.io.savemat(tmp_path / 'one.mat', {'kernels': kernels[0] * 3})
    np.save(tmp_path / 'stack.npy', np.stack(kernels))
    np.save(tmp_path / 'one.npy', kernels[1])
    for path, key, expected in (('cell.mat', 'kernels', kernels), ('column.mat', 'blur', kernels),
                                ('array.mat', 'kernels', kernels), ('one.mat', 'kernels', kernels[:1]),
                                ('stack.npy', 'kernels', kernels), ('one.npy', 'kernels', kernels[1:2])):
        loaded = load_kernels(str(tmp_path / path), key)
        assert len(loaded) == len(expected), path
        for got, want in zip(loaded, expected):
            assert got.dtype == np.float32 and abs(got.sum() - 1) < 1e-5
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=path)


@pytest.mark.skipif(not osp.isfile(SHARED_KERNELS), reason='needs ../shared/data/kernels/kernels_12.mat')
def test_shared_kernels_12():
    kernels = load_kernels(SHARED_KERNELS)
    assert len(kernels) == 12 and all(k.shape == (25, 25) and abs(k.sum() - 1) < 1e-5 for k in kernels)


def test_kernel_file_errors(tmp_path):
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = np.ones((5, 5)), np.ones((4, 4))
    scipy.io.savemat(tmp_path / 'even.mat', {'kernels': cell})
    scipy.io.savemat(tmp_path / 'other.mat', {'psf': np.ones((5, 5)), 'names': 'x'})
    scipy.io.savemat(tmp_path / 'empty.mat', {'kernels': np.empty((1, 0), dtype=object)})
    scipy.io.savemat(tmp_path / 'negative.mat', {'kernels': -np.ones((3, 3))})
    np.save(tmp_path / 'empty.npy', np.zeros((0, 5, 5)))
    np.save(tmp_path / 'flat.npy', np.ones(9))
    np.save(tmp_path / 'nan.npy', np.full((3, 3), np.nan))
    np.save(tmp_path / 'pickled.npy', np.array([np.ones((3, 3)), np.ones((5, 5))], dtype=object), allow_pickle=True)
    (tmp_path / 'corrupt.mat').write_bytes(b'MATLAB 5.0 MAT-file, garbage' * 10)
    (tmp_path / 'kernels.txt').write_text('1 2 3')
    cases = [  # (file, error, message); the variable looked for is 'kernels'
        ('missing.mat', FileNotFoundError, 'kernel_file is not a file: .*missing.mat'),
        ('other.mat', ValueError, r"other.mat has no variable 'kernels' \(it has: names, psf\); set kernel_key"),
        ('empty.mat', ValueError, r"empty.mat \('kernels'\) holds no kernels .*expected a .mat file whose"),
        ('empty.npy', ValueError, r'empty.npy holds no kernels \(shape \(0, 5, 5\)\)'),
        ('even.mat', ValueError, r"Kernel 2 of kernel_file .*even.mat \('kernels'\) has an even size \(4, 4\)"),
        ('flat.npy', ValueError, r'Kernel 1 of kernel_file .*flat.npy is not a 2-D numeric kernel \(shape \(9,\)'),
        ('negative.mat', ValueError, 'does not sum to a positive number'),
        ('nan.npy', ValueError, 'has non-finite values'),
        ('pickled.npy', ValueError, 'Cannot read kernel_file .*pickled.npy with numpy.load'),
        ('corrupt.mat', ValueError, 'Cannot read kernel_file .*corrupt.mat with scipy.io.loadmat'),
        ('kernels.txt', ValueError, 'kernels.txt is neither .mat nor .npy'),
    ]
    for name, error, message in cases:
        with pytest.raises(error, match=message):
            load_kernels(str(tmp_path / name))
    # ... and the dataset raises them when it is built
    (tmp_path / 'sharp').mkdir()
    with pytest.raises(ValueError, match="has no variable 'kernels'"):
        make_dataset(tmp_path / 'sharp', kernel_file=str(tmp_path / 'other.mat'))


def test_motion_kernel():
    rng = np.random.default_rng(1)
    for length in (0, 5, 20, 60):
        kernel = motion_kernel(25, length, rng)
        assert kernel.shape == (25, 25) and abs(kernel.sum() - 1) < 1e-5 and kernel.min() >= 0
        y, x = np.mgrid[:25, :25]
        assert abs((kernel * x).sum() - 12) < 1e-3 and abs((kernel * y).sum() - 12) < 1e-3  # centred: no shift
    assert motion_kernel(25, 0, rng)[12, 12] == 1  # no motion, no blur
    assert np.array_equal(motion_kernel(25, 20, np.random.default_rng(2)), motion_kernel(25, 20,
                                                                                         np.random.default_rng(2)))


@pytest.mark.parametrize('kernel_type', KERNEL_TYPES)
def test_random_kernel_types(kernel_type):
    rng = np.random.default_rng(3)
    kernel = random_kernel(rng, **{**GENERATOR, 'kernel_list': [kernel_type], 'kernel_prob': [1]})
    assert kernel.shape == (15, 15) and kernel.dtype == np.float32 and abs(kernel.sum() - 1) < 1e-5
    if kernel_type.endswith('_iso') or kernel_type == 'iso':
        np.testing.assert_allclose(kernel, kernel.T, atol=1e-6)


@pytest.mark.parametrize('border, mode', [('reflect', 'mirror'), ('symmetric', 'reflect'), ('edge', 'nearest'),
                                          ('wrap', 'wrap')])
def test_blur_is_a_true_convolution(border, mode):
    img = skimage_data.astronaut()[:40, :30].astype(np.float32) / 255
    kernel = some_kernels()[0]
    np.testing.assert_allclose(blur(img, kernel, border), ndimage.convolve(img, kernel[..., None], mode=mode),
                               atol=1e-5)
    shift = np.zeros((3, 3), np.float32)
    shift[1, 0] = 1  # convolving with a delta left of the centre moves the image left (correlating: right)
    assert np.array_equal(blur(img, shift)[:, :-1], img[:, 1:])
    assert blur(img[..., :1], kernel).shape == (40, 30, 1)


# Dataset


def test_registered(folder):
    assert DATASET_REGISTRY.get('SyntheticBlurDataset') is SyntheticBlurDataset
    assert len(make_dataset(folder)) == 3


def test_cycle_blurs_image_i_with_kernel_i_mod_k(folder, kernel_npy):
    kernels = load_kernels(str(kernel_npy))
    dataset = make_dataset(folder, kernel_file=str(kernel_npy))
    again = make_dataset(folder, kernel_file=str(kernel_npy))
    assert len(dataset) == 3
    for index, name in enumerate(('a', 'b', 'c')):
        item = dataset[index]
        assert item['gt_path'] == str(folder / f'{name}.png')
        assert item['lq_path'] == str(folder / f'{name}_k{index % 3 + 1:02d}.png')
        expected = blur(to_hwc(item['gt']), kernels[index % 3])
        np.testing.assert_allclose(to_hwc(item['lq']), expected, atol=1e-6)
        assert torch.equal(again[index]['lq'], item['lq'])


def test_all_blurs_every_image_with_every_kernel(folder, kernel_npy):
    dataset = make_dataset(folder, kernel_file=str(kernel_npy), kernel_pairing='all', noise_sigma=2.55)
    assert len(dataset) == 9
    items = [dataset[i] for i in range(9)]
    names = [osp.basename(item['lq_path']) for item in items]
    assert names == [f'{n}_k{k:02d}.png' for n in 'abc' for k in (1, 2, 3)]
    kernels = load_kernels(str(kernel_npy))
    for index, item in enumerate(items):
        residual = (to_hwc(item['lq']) - blur(to_hwc(item['gt']), kernels[index % 3])) * 255
        assert abs(residual.std() / 2.55 - 1) < 0.1
    # the noise differs between the kernels of one image, and is the same on every run
    assert not np.allclose(items[0]['lq'] - items[1]['lq'], 0)
    again = make_dataset(folder, kernel_file=str(kernel_npy), kernel_pairing='all', noise_sigma=2.55)
    assert all(torch.equal(again[i]['lq'], items[i]['lq']) for i in (8, 3, 0))


def test_validation_with_drawn_kernels_is_deterministic(folder):
    first = [item['lq'] for item in make_dataset(folder, noise_range=[0, 10], blur_kernel_size=15)]
    again = make_dataset(folder, noise_range=[0, 10], blur_kernel_size=15)
    assert all(torch.equal(again[i]['lq'], first[i]) for i in (2, 1, 0))
    assert not torch.equal(make_dataset(folder, noise_range=[0, 10], blur_kernel_size=15, seed=7)[0]['lq'], first[0])
    assert first[0].shape == (3, 64, 80)


def test_training_draws_kernels_crops_and_flips(folder, kernel_npy):
    random.seed(0)
    for kernel_file in (None, str(kernel_npy)):
        dataset = make_dataset(folder, 'train', kernel_file=kernel_file, gt_size=32, use_hflip=True, use_rot=True,
                               noise_range=[0, 5])
        items = [dataset[0] for _ in range(12)]
        assert all(item['gt'].shape == item['lq'].shape == (3, 32, 32) for item in items)
        assert all(item['lq_path'] == item['gt_path'] for item in items)
        assert len({item['lq'].sum().item() for item in items}) == 12


def test_gray_and_clip(folder):
    item = make_dataset(folder, color='gray', noise_sigma=30, clip=True, mod_crop=16)[1]
    assert item['gt'].shape == item['lq'].shape == (1, 48, 64) and 0 <= item['lq'].min() and item['lq'].max() <= 1


@pytest.mark.parametrize('opt, message', [
    ({'kernel_pairing': 'all'}, 'kernel_pairing: all of dataset .* needs a kernel_file'),
    ({'kernel_pairing': 'some'}, r"kernel_pairing .* must be one of \('cycle', 'all'\), got 'some'"),
    ({'kernel_list': ['iso', 'box']}, "kernel_list .* must name kernel types from .*got \\['iso', 'box'\\]"),
    ({'kernel_list': ['iso'], 'kernel_prob': [0.5, 0.5]}, 'kernel_prob .* one non-negative probability per'),
    ({'blur_kernel_size': 24}, 'blur_kernel_size .* must be an odd integer >= 3, got 24'),
    ({'blur_sigma': [3, 1]}, r'blur_sigma of dataset .* must be \[lo, hi\]'),
    ({'motion_length': 10}, r'motion_length of dataset .* must be \[lo, hi\]'),
    ({'blur_border': 'constant'}, "blur_border .* must be one of .*got 'constant'"),
    ({'noise_sigma': 1, 'noise_range': [0, 2]}, 'give noise_sigma or noise_range, not both'),
])
def test_option_errors(folder, opt, message):
    with pytest.raises(ValueError, match=message):
        make_dataset(folder, **opt)
