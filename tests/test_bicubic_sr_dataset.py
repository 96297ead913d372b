import random

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.data.transforms import mod_crop
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY

from msconv_plugin.data.bicubic_sr_dataset import BicubicSRDataset

SIZES = {'a.png': (37, 50), 'b.png': (29, 29), 'c.jpg': (48, 31)}


@pytest.fixture
def hr_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / 'hr'
    folder.mkdir()
    for name, (h, w) in SIZES.items():
        # smooth random images, so that bicubic downsampling is not dominated by clipping
        img = cv2.resize(rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, 3), dtype=np.uint8), (w, h))
        cv2.imwrite(str(folder / name), img)
    (folder / 'notes.txt').write_text('not an image\n')
    return folder


def make_dataset(folder, scale, **opt):
    return BicubicSRDataset({
        'name': 'tiny', 'dataroot_gt': str(folder), 'io_backend': {'type': 'disk'}, 'scale': scale, 'phase': 'test',
        **opt
    })


def read_rgb(path):
    return cv2.imread(str(path))[..., ::-1].astype(np.float32) / 255.


def test_registered_and_built_from_options(hr_folder):
    assert DATASET_REGISTRY.get('BicubicSRDataset') is BicubicSRDataset
    dataset = build_dataset({'name': 'tiny', 'type': 'BicubicSRDataset', 'dataroot_gt': str(hr_folder),
                             'io_backend': {'type': 'disk'}, 'scale': 2, 'phase': 'test'})
    assert len(dataset) == len(SIZES)  # notes.txt is not an image


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_lq_is_imresize_of_the_cropped_gt(hr_folder, scale):
    dataset = make_dataset(hr_folder, scale)
    for item, name in zip(dataset, sorted(SIZES)):
        assert item['gt_path'] == item['lq_path'] == str(hr_folder / name)
        expected_gt = mod_crop(read_rgb(hr_folder / name), scale)
        h, w = SIZES[name]
        assert item['gt'].shape == (3, h - h % scale, w - w % scale)
        assert item['lq'].shape == (3, h // scale, w // scale)
        assert torch.equal(item['gt'], torch.from_numpy(expected_gt.transpose(2, 0, 1).copy()))
        lq = item['lq'].numpy().transpose(1, 2, 0)
        expected_lq = np.clip(imresize(expected_gt, 1 / scale), 0, 1)
        np.testing.assert_allclose(lq, expected_lq, rtol=0, atol=0.5 / 255 + 1e-6)  # rounded to 8 bits
        np.testing.assert_allclose(lq * 255, np.round(lq * 255), rtol=0, atol=1e-4)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_train_crops_matching_patches(hr_folder, scale):
    dataset = make_dataset(hr_folder, scale, phase='train', gt_size=24, use_hflip=False, use_rot=False)
    full = make_dataset(hr_folder, scale)
    for index in range(len(dataset)):
        item, whole = dataset[index], full[index]
        assert item['gt'].shape == (3, 24, 24) and item['lq'].shape == (3, 24 // scale, 24 // scale)
        # the lq patch is the patch of the whole image's lq at the gt patch's position divided by scale
        lq_size = 24 // scale
        positions = [(top, left) for top in range(whole['lq'].shape[1] - lq_size + 1)
                     for left in range(whole['lq'].shape[2] - lq_size + 1)
                     if torch.equal(whole['gt'][:, top * scale:top * scale + 24, left * scale:left * scale + 24],
                                    item['gt'])]
        assert any(
            torch.equal(whole['lq'][:, top:top + lq_size, left:left + lq_size], item['lq']) for top, left in positions)


def test_train_augmentation_keeps_sizes(hr_folder):
    random.seed(0)
    dataset = make_dataset(hr_folder, 4, phase='train', gt_size=16, use_hflip=True, use_rot=True)
    for _ in range(16):  # every flip and rotation (BasicSR's augment flips in place: needs C-ordered arrays)
        item = dataset[0]
        assert item['gt'].shape == (3, 16, 16) and item['lq'].shape == (3, 4, 4)


def test_y_channel_and_normalization(hr_folder):
    y = make_dataset(hr_folder, 2, color='y')[0]
    assert y['gt'].shape == (1, 36, 50) and y['lq'].shape == (1, 18, 25)
    plain = make_dataset(hr_folder, 2)[0]
    normalized = make_dataset(hr_folder, 2, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])[0]
    torch.testing.assert_close(normalized['lq'], (plain['lq'] - 0.5) / 0.25)
    torch.testing.assert_close(normalized['gt'], (plain['gt'] - 0.5) / 0.25)


def test_lmdb_backend_gives_the_same_images(hr_folder, tmp_path):
    names = sorted(SIZES)
    lmdb_path = tmp_path / 'hr.lmdb'
    make_lmdb_from_imgs(str(hr_folder), str(lmdb_path), names, [n.split('.')[0] for n in names], map_size=1 << 24)
    dataset = BicubicSRDataset({'name': 'tiny', 'dataroot_gt': str(lmdb_path), 'io_backend': {'type': 'lmdb'},
                                'scale': 3, 'phase': 'test'})
    folder = make_dataset(hr_folder, 3)
    assert len(dataset) == len(folder)
    for from_lmdb, from_folder in zip(dataset, folder):
        assert torch.equal(from_lmdb['gt'], from_folder['gt']) and torch.equal(from_lmdb['lq'], from_folder['lq'])


def test_meta_info_file_selects_images(hr_folder, tmp_path):
    meta_info = tmp_path / 'meta_info.txt'
    meta_info.write_text('b.png (29,29,3)\n')
    dataset = make_dataset(hr_folder, 2, meta_info_file=str(meta_info))
    assert len(dataset) == 1 and dataset[0]['gt_path'] == str(hr_folder / 'b.png')


def test_mod_crop_crops_the_gt_to_a_larger_multiple(hr_folder):
    dataset = make_dataset(hr_folder, 2, mod_crop=4)  # RRDBNet x2: the LR a multiple of 2
    for item, name in zip(dataset, sorted(SIZES)):
        h, w = SIZES[name]
        assert item['gt'].shape == (3, h - h % 4, w - w % 4)
        assert item['lq'].shape == (3, h // 4 * 2, w // 4 * 2)
        expected_gt = mod_crop(read_rgb(hr_folder / name), 4)
        assert torch.equal(item['gt'], torch.from_numpy(expected_gt.transpose(2, 0, 1).copy()))


@pytest.mark.parametrize('value', [3, 2.0, '4', 0, -2, True])
def test_mod_crop_not_a_multiple_of_the_scale_is_refused(hr_folder, value):
    with pytest.raises(ValueError, match="mod_crop of dataset 'tiny' must be a positive multiple of scale 2"):
        make_dataset(hr_folder, 2, mod_crop=value)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='not a folder: .*nowhere'):
        make_dataset(tmp_path / 'nowhere', 2)


def test_empty_folder_is_named(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
    with pytest.raises(ValueError, match='No images in dataroot_gt .*empty'):
        make_dataset(tmp_path / 'empty', 2)


def test_unreadable_image_is_named(hr_folder):
    (hr_folder / 'broken.png').write_bytes(b'this is not a png')
    dataset = make_dataset(hr_folder, 2)
    index = dataset.paths.index(str(hr_folder / 'broken.png'))
    with pytest.raises(ValueError, match='Cannot read image .*broken.png'):
        dataset[index]
