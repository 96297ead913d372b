"""Fixes of ``msconv_plugin.basicsr_fixes`` (importing, checkpoints) next to the BasicSR 1.4.2 failure they exist
for."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch
import yaml

import msconv_plugin  # before anything of BasicSR, as in the plugin's own entry points
import basicsr.train
from basicsr.models import build_model
from basicsr.utils import make_exp_dirs
from basicsr.utils.options import parse_options

TINY_YML = osp.join(osp.dirname(__file__), 'data', 'train_MS3EDSR_tiny.yml')


def _python(code):
    """Run ``code`` in a fresh interpreter, so that no module is imported before the ones it names."""
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)


# Fix 1: torchvision.transforms.functional_tensor -> _functional_tensor


def test_basicsr_imports_after_the_plugin():
    proc = _python('import msconv_plugin\n'
                   'import basicsr\n'
                   'from basicsr.data.degradations import random_add_gaussian_noise_pt, rgb_to_grayscale\n'
                   'from torchvision.transforms import _functional_tensor\n'
                   'assert rgb_to_grayscale is _functional_tensor.rgb_to_grayscale\n')
    assert proc.returncode == 0, proc.stderr


def test_basicsr_alone_fails_to_import():
    """Why fix 1 exists: BasicSR 1.4.2 imports a module that torchvision >= 0.17 no longer has."""
    proc = _python('import basicsr')
    if proc.returncode == 0:
        pytest.skip('this BasicSR/torchvision pair imports without the plugin: basicsr_fixes.importing is no longer '
                    'needed')
    assert "ModuleNotFoundError: No module named 'torchvision.transforms.functional_tensor'" in proc.stderr


# Fix 2: a CPU-safe basicsr.train.load_resume_state


@pytest.fixture
def no_gpu(monkeypatch):
    """Behave like a machine without a GPU, and fail loudly if anything still asks for the current GPU."""

    def current_device():
        raise RuntimeError('torch.cuda.current_device() called on a machine without a GPU')

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'current_device', current_device)


@pytest.fixture
def saved_training_state(tmp_path, monkeypatch):
    """A training state written by BasicSR itself (SRModel.save on CPU) under ``tmp_path/experiments``.

    Returns a function that parses the option file again with extra command-line arguments, the way
    ``basicsr.train.train_pipeline`` does, with the working directory at ``tmp_path``.
    """
    with open(TINY_YML) as f:
        opt = yaml.safe_load(f)
    opt['name'] = 'compat_resume'
    # BasicSR's own EDSR keeps this test about BasicSR, whatever state the plugin's networks are in.
    opt['network_g'] = dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2)
    yml = tmp_path / 'compat_resume.yml'
    yml.write_text(yaml.safe_dump(opt, sort_keys=False))
    monkeypatch.chdir(tmp_path)

    def parse(*args):
        monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(yml), *args])
        opt, _ = parse_options(str(tmp_path), is_train=True)
        return opt

    opt = parse()
    make_exp_dirs(opt)
    model = build_model(opt)
    model.feed_data({'lq': torch.rand(1, 3, 8, 8), 'gt': torch.rand(1, 3, 16, 16)})
    model.optimize_parameters(current_iter=1)  # gives Adam a per-parameter state to save and restore
    model.save(epoch=3, current_iter=6)
    assert (tmp_path / 'experiments' / 'compat_resume' / 'training_states' / '6.state').is_file()
    return parse


def _assert_resumable(opt, state):
    assert state['epoch'] == 3 and state['iter'] == 6
    adam_state = next(iter(state['optimizers'][0]['state'].values()))
    assert adam_state['exp_avg'].device.type == 'cpu'
    # check_resume ran: the networks are re-loaded from the checkpoint saved with the state.
    assert opt['path']['pretrain_network_g'] == osp.join(opt['path']['models'], 'net_g_6.pth')
    build_model(opt).resume_training(state)


def test_load_resume_state_is_the_plugins():
    assert basicsr.train.load_resume_state is msconv_plugin.basicsr_fixes.checkpoints.load_resume_state


def test_auto_resume_loads_a_basicsr_training_state_without_gpu(saved_training_state, no_gpu):
    opt = saved_training_state('--auto_resume')
    state = basicsr.train.load_resume_state(opt)
    assert opt['path']['resume_state'] == osp.join('experiments', 'compat_resume', 'training_states', '6.state')
    _assert_resumable(opt, state)


def test_resume_state_path_loads_a_basicsr_training_state_without_gpu(saved_training_state, no_gpu):
    opt = saved_training_state('--force_yml', 'path:resume_state=experiments/compat_resume/training_states/6.state')
    assert not opt['auto_resume']
    _assert_resumable(opt, basicsr.train.load_resume_state(opt))


def test_shipped_load_resume_state_needs_a_gpu(saved_training_state, no_gpu):
    """Why fix 2 exists: BasicSR 1.4.2's own loader asks for the current GPU."""
    spec = importlib.util.spec_from_file_location('_basicsr_train_as_shipped', basicsr.train.__file__)
    shipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shipped)
    opt = saved_training_state('--auto_resume')
    try:
        shipped.load_resume_state(opt)
    except RuntimeError as error:
        assert 'current_device' in str(error)
    else:
        pytest.skip("BasicSR's own load_resume_state now works without a GPU: its replacement in "
                    "basicsr_fixes.checkpoints is no longer needed")
