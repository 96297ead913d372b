"""The plugin's option files, and real CPU runs of ``msconv_plugin.train`` / ``msconv_plugin.test`` on tiny images."""
import glob
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from skimage import data as skimage_data

import msconv_plugin  # noqa: F401  (before anything of BasicSR: makes it importable, registers MS3EDSR)
from basicsr.archs import build_network
from basicsr.utils.matlab_functions import imresize

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_YML = osp.join(REPO, 'tests', 'data', 'train_MS3EDSR_tiny.yml')
OPTION_FILES = sorted(glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True))
VALIDATION_PSNR = re.compile(r'Validation (\w+)\n\t # psnr: (\d+\.\d+)')


def _load_yml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def _dump_yml(opt, path):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


# Option files


def _distinct_networks():
    """Every distinct ``network_g`` of the shipped option files, with the files that use it."""
    networks = {}
    for path in OPTION_FILES:
        opt = _load_yml(path)
        key = yaml.safe_dump(opt['network_g'], sort_keys=True)
        networks.setdefault(key, (opt['network_g'], opt['scale'], []))[2].append(osp.relpath(path, REPO))
    return [pytest.param(*value, id=value[2][0]) for value in networks.values()]


@pytest.mark.slow
@pytest.mark.parametrize('network_g,scale,paths', _distinct_networks())
def test_option_networks_build_at_full_size(network_g, scale, paths):
    """tests/test_option_files.py runs every file with tiny networks; here each network is built as shipped."""
    net = build_network(network_g)
    x = torch.rand(1, 3, 4, 4)
    with torch.no_grad():
        assert net(x).shape == (1, 3, 4 * scale, 4 * scale), paths


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_test_options_load_what_training_writes(scale):
    train_opt = _load_yml(osp.join(REPO, 'options', 'train', 'MS3EDSR', f'train_MS3EDSR_Mx{scale}.yml'))
    test_opt = _load_yml(osp.join(REPO, 'options', 'test', 'MS3EDSR', f'test_MS3EDSR_Mx{scale}.yml'))
    assert train_opt['scale'] == test_opt['scale'] == scale
    assert test_opt['network_g'] == train_opt['network_g']
    assert test_opt['path']['pretrain_network_g'] == f'experiments/{train_opt["name"]}/models/net_g_latest.pth'
    if scale != 2:  # x3 and x4 start from the x2 model, as BasicSR's EDSR-M ones do
        x2_name = _load_yml(osp.join(REPO, 'options', 'train', 'MS3EDSR', 'train_MS3EDSR_Mx2.yml'))['name']
        assert train_opt['path']['pretrain_network_g'] == f'experiments/{x2_name}/models/net_g_300000.pth'


# Real runs


def _write_pairs(folder, images, scale=2):
    """Write HR images and their MATLAB-bicubic LR as PNG into ``folder/HR`` and ``folder/LR_bicubic/X<scale>``."""
    hr_dir, lr_dir = folder / 'HR', folder / 'LR_bicubic' / f'X{scale}'
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    for i, hr in enumerate(images):
        lr = np.clip(np.round(imresize(hr / 255., 1 / scale) * 255.), 0, 255).astype(np.uint8)
        cv2.imwrite(str(hr_dir / f'{i:04d}.png'), hr[..., ::-1])
        cv2.imwrite(str(lr_dir / f'{i:04d}.png'), lr[..., ::-1])
    return hr_dir, lr_dir


def _run(module, *args, cwd):
    proc = subprocess.run([sys.executable, '-m', module, *args],
                          cwd=cwd,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """20 iterations of the tiny option file on 64x64 crops of scikit-image's sample photos."""
    root = tmp_path_factory.mktemp('run')
    crops = [img[top:top + 64, left:left + 64] for img in (skimage_data.astronaut(), skimage_data.coffee())
             for top, left in ((100, 100), (200, 300), (300, 200), (250, 50))]
    train_hr, train_lr = _write_pairs(root / 'datasets' / 'train', crops[:6])
    val_hr, val_lr = _write_pairs(root / 'datasets' / 'val', crops[6:])

    opt = _load_yml(TINY_YML)
    opt['datasets']['train'].update(dataroot_gt=str(train_hr), dataroot_lq=str(train_lr))
    opt['datasets']['val'].update(dataroot_gt=str(val_hr), dataroot_lq=str(val_lr))
    yml = _dump_yml(opt, root / 'train_tiny.yml')
    log = _run('msconv_plugin.train', '-opt', str(yml), cwd=root)
    return root, opt, yml, log


def test_training_runs_validates_and_checkpoints(trained):
    root, opt, _, log = trained
    assert opt['train']['total_iter'] == 20
    val_name = opt['datasets']['val']['name']
    assert [name for name, _ in VALIDATION_PSNR.findall(log)] == [val_name] * 3  # iters 10 and 20, end of training
    exp = root / 'experiments' / opt['name']
    log_files = list(exp.glob(f'train_{opt["name"]}_*.log'))
    assert len(log_files) == 1 and len(VALIDATION_PSNR.findall(log_files[0].read_text())) == 3
    for path in ('models/net_g_10.pth', 'models/net_g_20.pth', 'models/net_g_latest.pth', 'training_states/20.state'):
        assert (exp / path).is_file(), path
    assert set(torch.load(exp / 'models' / 'net_g_20.pth')) == {'params', 'params_ema'}


def test_auto_resume_continues_from_the_last_state(trained):
    root, opt, yml, _ = trained
    log = _run('msconv_plugin.train', '-opt', str(yml), '--auto_resume', '--force_yml', 'train:total_iter=30', cwd=root)
    assert re.search(r'Resuming training from epoch: \d+, iter: 20\.', log)
    assert re.search(r'Start training from epoch: \d+, iter: 20\n', log)
    # The scheduler state came back too: its milestone at 25 has halved the learning rate by iteration 30
    # (a fresh scheduler would have counted 10 steps only).
    assert re.search(r'iter:\s+30, lr:\(1\.000e-04,\)', log)
    assert len(VALIDATION_PSNR.findall(log)) == 2  # iter 30, end of training
    exp = root / 'experiments' / opt['name']
    assert (exp / 'models' / 'net_g_30.pth').is_file()
    assert (exp / 'training_states' / '30.state').is_file()


def test_test_pipeline_reports_psnr_and_ssim(trained):
    root, train_opt, _, _ = trained
    val = dict(train_opt['datasets']['val'], name='tiny_test')
    opt = {
        'name': 'MS3EDSR_tiny_x2_test',
        'model_type': 'SRModel',
        'scale': 2,
        'num_gpu': 'auto',
        'manual_seed': 0,
        'datasets': {'test_1': val},
        'network_g': train_opt['network_g'],
        'path': {
            'pretrain_network_g': str(root / 'experiments' / train_opt['name'] / 'models' / 'net_g_20.pth'),
            'param_key_g': 'params_ema',
            'strict_load_g': True,
        },
        'val': {
            'save_img': True,
            'suffix': None,
            'metrics': {
                'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True},
                'ssim': {'type': 'calculate_ssim', 'crop_border': 2, 'test_y_channel': True},
            },
        },
    }
    log = _run('msconv_plugin.test', '-opt', str(_dump_yml(opt, root / 'test_tiny.yml')), cwd=root)
    match = re.search(r'Validation tiny_test\n\t # psnr: (\d+\.\d+).*\n\t # ssim: (\d\.\d+)', log)
    assert match, log
    results = root / 'results' / opt['name']
    assert match[0] in next(results.glob(f'test_{opt["name"]}_*.log')).read_text()
    assert sorted(p.name for p in (results / 'visualization' / 'tiny_test').iterdir()) == [
        f'{i:04d}_{opt["name"]}.png' for i in (0, 1)
    ]
