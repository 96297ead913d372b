"""scripts/prepare_dataset.py: sub-images as BasicSR's extract_subimages.py, bicubic LR, LMDB that BasicSR reads."""
import importlib.util
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from basicsr.data import build_dataset
from basicsr.data.data_util import paths_from_lmdb
from basicsr.utils import FileClient, imfrombytes
from basicsr.utils.matlab_functions import imresize

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
spec = importlib.util.spec_from_file_location('prepare_dataset', osp.join(REPO, 'scripts', 'prepare_dataset.py'))
prepare = importlib.util.module_from_spec(spec)
sys.modules['prepare_dataset'] = prepare  # its worker processes find the worker function by module name
spec.loader.exec_module(prepare)

# Sizes like DIV2K's (multiples of 12) and one that is not, so that the crop to a multiple of 12 shows.
HR_SIZES = {'0001': (96, 120), '0002': (108, 72), '0003': (62, 50)}


def basicsr_positions(length, crop_size, step, thresh_size):
    """BasicSR's scripts/data_preparation/extract_subimages.py, for one axis."""
    space = np.arange(0, length - crop_size + 1, step)
    if length - (space[-1] + crop_size) > thresh_size:
        space = np.append(space, length - crop_size)
    return list(space)


@pytest.fixture
def hr_folder(tmp_path):
    folder = tmp_path / 'datasets' / 'DIV2K' / 'DIV2K_train_HR'
    folder.mkdir(parents=True)
    photo = skimage_data.astronaut()[..., ::-1]
    for name, (h, w) in HR_SIZES.items():
        cv2.imwrite(str(folder / f'{name}.png'), np.ascontiguousarray(photo[100:100 + h, 150:150 + w]))
    return folder


@pytest.mark.parametrize('length, crop, step, thresh', [(2040, 480, 240, 0), (1356, 480, 240, 0), (500, 480, 240, 0),
                                                         (510, 480, 240, 40), (96, 48, 24, 0)])
def test_positions_are_basicsr_s(length, crop, step, thresh):
    assert prepare.sub_image_positions(length, crop, step, thresh) == basicsr_positions(length, crop, step, thresh)


def test_short_axis_gives_one_sub_image():
    assert prepare.sub_image_positions(40, 48, 24, 0) == [0]


def test_output_names_are_basicsr_s():
    outputs = prepare.sr_output_paths('datasets/DIV2K/DIV2K_train_HR', [2, 4])
    assert outputs == {
        'hr': ('datasets/DIV2K/DIV2K_train_HR_sub', 'datasets/DIV2K/DIV2K_train_HR_sub.lmdb'),
        2: ('datasets/DIV2K/DIV2K_train_LR_bicubic/X2_sub', 'datasets/DIV2K/DIV2K_train_LR_bicubic_X2_sub.lmdb'),
        4: ('datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub', 'datasets/DIV2K/DIV2K_train_LR_bicubic_X4_sub.lmdb'),
    }
    assert prepare.sr_output_paths('data/photos/', [3])[3][0] == 'data/photos_LR_bicubic/X3_sub'


@pytest.mark.parametrize('n_thread', [1, 2])
def test_sr_sub_images_lr_and_lmdb(hr_folder, n_thread):
    outputs = prepare.main(['sr', str(hr_folder), '--crop-size', '48', '--step', '24', '--n-thread', str(n_thread),
                            '--lmdb'])
    assert set(outputs) == {'hr', 2, 3, 4}
    for name, (h, w) in HR_SIZES.items():
        hr = cv2.imread(str(hr_folder / f'{name}.png'))
        h, w = h - h % 12, w - w % 12  # a multiple of every scale, so that every scale crops the same region
        hr = hr[:h, :w]
        index = 0
        for top in basicsr_positions(h, 48, 24, 0):
            for left in basicsr_positions(w, 48, 24, 0):
                index += 1
                sub = cv2.imread(osp.join(outputs['hr'][0], f'{name}_s{index:03d}.png'))
                assert np.array_equal(sub, hr[top:top + 48, left:left + 48])
                for scale in (2, 3, 4):
                    lr = np.clip(np.floor(imresize(hr / 255., 1 / scale) * 255 + 0.5), 0, 255).astype(np.uint8)
                    lr_sub = cv2.imread(osp.join(outputs[scale][0], f'{name}_s{index:03d}.png'))
                    t, s, c = top // scale, left // scale, 48 // scale
                    assert np.array_equal(lr_sub, lr[t:t + c, s:s + c]), (name, index, scale)
        assert not osp.exists(osp.join(outputs['hr'][0], f'{name}_s{index + 1:03d}.png'))

    # LMDB: meta_info as BasicSR writes it, keys = file names without extension, images identical
    for folder, lmdb_path in outputs.values():
        names = sorted(p[:-4] for p in os.listdir(folder))
        assert paths_from_lmdb(lmdb_path) == names
        with open(osp.join(lmdb_path, 'meta_info.txt')) as f:
            first = f.readline().split()
        assert first[0] == f'{names[0]}.png' and first[1].startswith('(') and first[2] == '1'
        client = FileClient('lmdb', db_paths=[lmdb_path], client_keys=['gt'])
        for key in names[:3]:
            assert np.array_equal(imfrombytes(client.get(key, 'gt')), cv2.imread(osp.join(folder, f'{key}.png')))

    # ... which PairedImageDataset reads as the option files' commented lmdb lines say
    dataset = build_dataset({'name': 'DIV2K', 'type': 'PairedImageDataset', 'dataroot_gt': outputs['hr'][1],
                             'dataroot_lq': outputs[3][1], 'io_backend': {'type': 'lmdb'}, 'phase': 'train',
                             'scale': 3, 'gt_size': 24, 'use_hflip': True, 'use_rot': True})
    assert len(dataset) == len(paths_from_lmdb(outputs['hr'][1]))
    assert dataset[0]['gt'].shape == (3, 24, 24) and dataset[0]['lq'].shape == (3, 8, 8)


def test_sr_without_scales_writes_hr_only(hr_folder):
    outputs = prepare.main(['sr', str(hr_folder), '--scales', '--crop-size', '48', '--step', '48', '--n-thread', '1'])
    assert set(outputs) == {'hr'} and not osp.exists(str(hr_folder).replace('_HR', '_LR_bicubic'))
    assert cv2.imread(osp.join(outputs['hr'][0], '0003_s001.png')).shape == (48, 48, 3)  # 62x50 → 48x48


def test_sr_refuses_to_overwrite_and_bad_sizes(hr_folder):
    prepare.main(['sr', str(hr_folder), '--scales', '2', '--crop-size', '48', '--step', '48', '--n-thread', '1'])
    with pytest.raises(FileExistsError, match='Output exists already .*DIV2K_train_HR_sub'):
        prepare.main(['sr', str(hr_folder), '--scales', '2', '--crop-size', '48', '--step', '48', '--n-thread', '1'])
    with pytest.raises(ValueError, match='must be multiples of 12'):
        prepare.main(['sr', str(hr_folder), '--crop-size', '50'])
    with pytest.raises(FileNotFoundError, match='Not a folder: .*nowhere'):
        prepare.main(['sr', str(hr_folder.parent / 'nowhere')])


def test_benchmark_gtmod12_and_lrbicx(hr_folder, tmp_path):
    gt_folder, lr_folders = prepare.main(['benchmark', str(hr_folder), str(tmp_path / 'Set5')])
    assert gt_folder == str(tmp_path / 'Set5' / 'GTmod12') and set(lr_folders) == {2, 3, 4}
    gt = cv2.imread(osp.join(gt_folder, '0003.png'))
    assert gt.shape == (60, 48, 3)
    for scale, folder in lr_folders.items():
        assert folder == str(tmp_path / 'Set5' / f'LRbicx{scale}')
        expected = np.clip(np.floor(imresize(gt / 255., 1 / scale) * 255 + 0.5), 0, 255).astype(np.uint8)
        assert np.array_equal(cv2.imread(osp.join(folder, '0003.png')), expected)


def test_gopro_flattens_holds_out_validation_and_writes_lmdb(tmp_path):
    root = tmp_path / 'GOPRO_Large'
    frame = np.zeros((8, 8, 3), np.uint8)
    layout = {'train': ['GOPR0372_07_00', 'GOPR0374_11_00', 'GOPR0378_13_00'], 'test': ['GOPR0384_11_00']}
    for part, sequences in layout.items():
        for seq in sequences:
            for kind in ('blur', 'blur_gamma', 'sharp'):
                (root / part / seq / kind).mkdir(parents=True)
                for i in (47, 48):
                    cv2.imwrite(str(root / part / seq / kind / f'{i:06d}.png'), frame + (kind == 'sharp'))
    outputs = prepare.main(['gopro', str(root), str(tmp_path / 'GoPro'), '--lmdb'])
    expected = {'train': ['GOPR0372_07_00'], 'val': ['GOPR0374_11_00', 'GOPR0378_13_00'], 'test': ['GOPR0384_11_00']}
    for part, sequences in expected.items():
        names = [f'{seq}_{i:06d}.png' for seq in sequences for i in (47, 48)]
        for kind, value in (('input', 0), ('target', 1)):
            folder = tmp_path / 'GoPro' / part / kind
            assert outputs[part][kind] == str(folder) and sorted(p.name for p in folder.iterdir()) == names
            assert cv2.imread(str(folder / names[0])).max() == value  # input: blur (not blur_gamma), target: sharp
            assert paths_from_lmdb(f'{folder}.lmdb') == [n[:-4] for n in names]
    with pytest.raises(ValueError, match=r'--val-sequences must be in \[0, 2\], got 3'):
        prepare.main(['gopro', str(root), str(tmp_path / 'other'), '--val-sequences', '3'])
