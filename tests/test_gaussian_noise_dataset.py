import random

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skimage_data

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.registry import DATASET_REGISTRY

from msconv_plugin.data.gaussian_noise_dataset import GaussianNoiseDataset


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'clean'
    root.mkdir()
    photos = {'astronaut.png': skimage_data.astronaut()[:96, :128], 'coffee.png': skimage_data.coffee()[:80, :96],
              'rocket.png': skimage_data.rocket()[200:290, 100:190]}
    for name, img in photos.items():
        cv2.imwrite(str(root / name), np.ascontiguousarray(img[..., ::-1]))
    return root


def make_dataset(root, phase='val', **opt):
    defaults = {'sigma': 25} if 'sigma_range' not in opt else {}
    return build_dataset({'name': 'noisy', 'type': 'GaussianNoiseDataset', 'dataroot_gt': str(root),
                          'io_backend': {'type': 'disk'}, 'phase': phase, 'scale': 1, **defaults, **opt})


def noise(item):
    return (item['lq'] - item['gt']).numpy() * 255


def read_rgb(path):
    return torch.from_numpy(cv2.imread(str(path))[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255)


def test_registered(folder):
    assert DATASET_REGISTRY.get('GaussianNoiseDataset') is GaussianNoiseDataset
    assert len(make_dataset(folder)) == 3


@pytest.mark.parametrize('sigma', [15, 25, 50])
def test_validation_noise_has_sigma_and_keeps_the_clean_image(folder, sigma):
    dataset = make_dataset(folder, sigma=sigma)
    for item in dataset:
        assert torch.equal(item['gt'], read_rgb(item['gt_path']))
        assert item['lq_path'] == item['gt_path'] and item['sigma'] == sigma
        n = noise(item)
        assert abs(n.std() / sigma - 1) < 0.03 and abs(n.mean()) < 4 * sigma / n.size**0.5
        assert abs(np.corrcoef(n[0].ravel(), n[1].ravel())[0, 1]) < 0.05  # independent channels
    assert item['lq'].min() < 0 or item['lq'].max() > 1  # not clipped by default


def test_validation_noise_is_the_same_on_every_run_in_any_order(folder, tmp_path):
    first = [item['lq'] for item in make_dataset(folder)]
    again = make_dataset(folder)
    assert all(torch.equal(again[i]['lq'], first[i]) for i in (2, 0, 1))
    # an image's noise depends on its name and the seed only: not on the list around it, nor on its storage
    meta_info = tmp_path / 'meta_info.txt'
    meta_info.write_text('rocket.png\n')
    assert torch.equal(make_dataset(folder, meta_info_file=str(meta_info))[0]['lq'], first[2])
    names = sorted(p.name for p in folder.iterdir())
    make_lmdb_from_imgs(str(folder), str(tmp_path / 'clean.lmdb'), names, [n[:-4] for n in names], map_size=1 << 24)
    lmdb = make_dataset(tmp_path / 'clean.lmdb', io_backend={'type': 'lmdb'})
    assert all(torch.equal(lmdb[i]['lq'], first[i]) for i in range(3))
    # another seed, another noise; the test files give seed 0 (the default)
    assert not torch.equal(make_dataset(folder, seed=1)[0]['lq'], first[0])
    assert torch.equal(make_dataset(folder, seed=0)[0]['lq'], first[0])


def test_validation_sigma_range_is_drawn_per_image(folder):
    sigmas = [item['sigma'] for item in make_dataset(folder, sigma_range=[10, 50])]
    assert all(10 <= s <= 50 for s in sigmas) and len(set(sigmas)) == 3
    assert sigmas == [item['sigma'] for item in make_dataset(folder, sigma_range=[10, 50])]


def test_training_draws_fresh_noise_and_sigma_in_range(folder):
    dataset = make_dataset(folder, 'train', sigma_range=[5, 55], gt_size=64, use_hflip=True, use_rot=True)
    items = [dataset[0] for _ in range(40)]
    sigmas = np.array([item['sigma'] for item in items])
    assert sigmas.min() >= 5 and sigmas.max() <= 55 and sigmas.min() < 15 and sigmas.max() > 45
    for item in items:
        assert item['gt'].shape == item['lq'].shape == (3, 64, 64)
        assert abs(noise(item).std() / item['sigma'] - 1) < 0.05
    random.seed(1)
    first = dataset[0]
    random.seed(1)
    assert torch.equal(dataset[0]['lq'], first['lq'])  # reproducible from the seeds BasicSR and PyTorch set


def test_training_crops_patches_of_the_clean_image(folder):
    dataset = make_dataset(folder, 'train', sigma=15, gt_size=32, use_hflip=False, use_rot=False)
    for index in range(3):
        whole = read_rgb(dataset.paths[index]).numpy().transpose(1, 2, 0)
        patch = dataset[index]['gt'].numpy().transpose(1, 2, 0)
        assert cv2.minMaxLoc(cv2.matchTemplate(whole, patch, cv2.TM_SQDIFF))[0] < 1e-3  # float rounding only


def test_gray(folder):
    item = make_dataset(folder, color='gray')[0]
    gray = cv2.imread(item['gt_path'], cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    assert item['gt'].shape == item['lq'].shape == (1, 96, 128)
    assert torch.equal(item['gt'][0], torch.from_numpy(gray))
    train = make_dataset(folder, 'train', color='gray', gt_size=16, use_hflip=True, use_rot=True)
    for _ in range(8):
        assert train[1]['lq'].shape == (1, 16, 16)


def test_gray_denoising_trains_a_one_channel_network(folder, tmp_path):
    dataset_opt = {'name': 'noisy', 'type': 'GaussianNoiseDataset', 'dataroot_gt': str(folder), 'sigma': 25,
                   'color': 'gray', 'io_backend': {'type': 'disk'}, 'phase': 'train', 'scale': 1, 'gt_size': 16,
                   'use_hflip': True, 'use_rot': True, 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0}
    loader = build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0)
    model = build_model({
        'model_type': 'SRModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'scale': 1,
        'network_g': {'type': 'MS3RRDBNet', 'num_in_ch': 1, 'num_out_ch': 1, 'scale': 1, 'num_feat': 8,
                      'num_block': 1, 'num_grow_ch': 4},
        'path': {}, 'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR',
                                                                                   'milestones': [10]},
                              'pixel_opt': {'type': 'L1Loss'}}})
    model.feed_data(next(iter(loader)))
    model.optimize_parameters(1)
    assert model.output.shape == (2, 1, 16, 16)


def test_clip_and_mod_crop(folder):
    item = make_dataset(folder, sigma=50, clip=True, mod_crop=12)[2]  # rocket: 90x90
    assert item['gt'].shape == (3, 84, 84) and item['lq'].min() >= 0 and item['lq'].max() <= 1


@pytest.mark.parametrize('opt, message', [
    ({}, "needs sigma .* or sigma_range"),
    ({'sigma': 15, 'sigma_range': [0, 50]}, 'give sigma or sigma_range, not both'),
    ({'sigma_range': [50, 10]}, r'sigma_range must be .* 0 <= lo <= hi, got \[50, 10\]'),
    ({'sigma_range': [10]}, 'sigma_range must be'),
    ({'sigma': -5}, 'sigma must be a number >= 0'),
])
def test_noise_level_errors(folder, opt, message):
    with pytest.raises(ValueError, match=message):
        GaussianNoiseDataset({'name': 'noisy', 'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'},
                              'phase': 'val', 'scale': 1, **opt})
