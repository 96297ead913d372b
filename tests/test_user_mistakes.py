"""Issue 16, nothing lost, nothing silent: each user mistake reproduced with tiny data, and the clear message (or the
correct result) it now gets; data-loss tests compare the user's files byte for byte afterwards.

Kinds: (a) option files checked before any work (``msconv_plugin.validation``), (b) no data loss (inference outputs,
the experiment lock, truncated network checkpoints), (c) honest resume and the NaN advice followed literally,
(d) inference on real photos and folders, (e) ``error:`` lines instead of tracebacks (``msconv_plugin.cli``).
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
import msconv_plugin.train
from msconv_plugin import experiment_lock
from msconv_plugin.cli import UserError, run
from msconv_plugin.validation import OptionError
from tests.test_inference import SCALE, random_image, zoo  # noqa: F401  (zoo: a fixture)
from tests.test_inference import run as infer
from tests.test_train_pipeline import REPO, TINY_YML, _load_yml

RNG = np.random.default_rng(0)
EDSR = dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2)


def _pairs(root, sizes, scale=2):
    """``root/gt`` and ``root/lq`` with one image pair per (h, w) GT size; returns the two folders."""
    gt, lq = root / 'gt', root / 'lq'
    gt.mkdir(parents=True, exist_ok=True)
    lq.mkdir(exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        img = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.imwrite(str(gt / f'{i}.png'), img)
        cv2.imwrite(str(lq / f'{i}.png'), cv2.resize(img, (w // scale, h // scale), interpolation=cv2.INTER_AREA))
    return gt, lq


def _options(tmp_path, name='mistake', n_images=4, **train):
    """A tiny EDSR ×2 option file over ``n_images`` 32×32 pairs (validation on the same images)."""
    gt, lq = _pairs(tmp_path / 'data', [(32, 32)] * n_images)
    opt = _load_yml(TINY_YML)
    opt['name'] = name
    opt['network_g'] = dict(EDSR)
    for dataset in opt['datasets'].values():
        dataset.update(dataroot_gt=str(gt), dataroot_lq=str(lq))
    opt['train'].update({'total_iter': 4, **train})
    opt['val']['val_freq'] = 100
    opt['logger'].update(print_freq=2, save_checkpoint_freq=2)
    return opt


def _write(opt, path):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def _train(tmp_path, monkeypatch, opt, *args):
    """``python -m msconv_plugin.train -opt <opt> <args>`` in this process, from ``tmp_path``."""
    yml = _write(opt, tmp_path / f'{opt["name"]}.yml') if isinstance(opt, dict) else opt
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(yml), *args])
    msconv_plugin.train.main()


def _snapshot(folder):
    """{relative path: bytes} of every file under ``folder``."""
    return {osp.relpath(osp.join(d, f), folder): open(osp.join(d, f), 'rb').read()
            for d, _, files in os.walk(folder) for f in files}


# (c) The NaN advice, followed literally


def test_nan_advice_followed_literally_finishes(tmp_path, monkeypatch):
    # Healthy for 4 iterations (checkpoints at 2 and 4), then the schedule multiplies the rate by 1e9: Adam moves
    # every weight by about 1e6 and the loss overflows.
    opt = _options(tmp_path, name='nan_advice', total_iter=8)
    opt['train']['optim_g']['lr'] = 1e-3
    opt['train']['scheduler'] = dict(type='MultiStepLR', milestones=[4], gamma=1e9)
    del opt['datasets']['val'], opt['val']
    with pytest.raises(FloatingPointError) as stopped:
        _train(tmp_path, monkeypatch, opt)
    message = str(stopped.value)
    assert 'Lower the learning rate (train.optim_g.lr) in the option file' in message
    assert 'run python -m msconv_plugin.train with the same option file and --auto_resume' in message

    opt['train']['optim_g']['lr'] = 1e-3 * 1e-9  # lowered, so that the rate after the milestone is 1e-3 again
    _train(tmp_path, monkeypatch, opt, '--auto_resume')
    models = tmp_path / 'experiments' / 'nan_advice' / 'models'
    assert {'net_g_8.pth', 'net_g_latest.pth'} <= {p.name for p in models.iterdir()}
    log = ''.join(p.read_text() for p in (models.parent).glob('train_*.log'))
    assert 'Resuming with the option file\'s settings where they differ from the saved state: optimizer 0 ' \
           'initial_lr: 0.001 -> 1' in log and 'Resuming training from epoch: 1, iter: 4.' in log
    latest = torch.load(models / 'net_g_latest.pth')
    assert all(torch.isfinite(t).all() for params in latest.values() for t in params.values())
