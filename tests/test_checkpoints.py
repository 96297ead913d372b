"""Crash-safe checkpoints (``msconv_plugin.basicsr_fixes.checkpoints``): atomic saves and resuming past unreadable
training states."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
import basicsr.train
from basicsr.archs import build_network
from basicsr.models import build_model
from basicsr.utils import make_exp_dirs
from basicsr.utils.options import parse_options

from msconv_plugin.basicsr_fixes import checkpoints
from tests.test_train_pipeline import TINY_YML, _dump_yml, _load_yml, _write_pairs

REPO = __file__.rsplit('/tests/', 1)[0]
HOOKS = f'{REPO}/tests/train_with_hooks.py'


def _truncate(path, to=None):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 if to is None else to])


def _loads(path):
    try:
        torch.load(path)
    except Exception:
        return False
    return True


# A real run, killed in the middle of writing a checkpoint, then resumed


@pytest.fixture(scope='module')
def killed_run(tmp_path_factory):
    """20 iterations, a checkpoint every 5: killed (SIGKILL) half-way through writing the state of iteration 10."""
    root = tmp_path_factory.mktemp('kill')
    rng = torch.Generator().manual_seed(0)
    images = [(torch.rand(16, 16, 3, generator=rng) * 255).byte().numpy().repeat(2, 0).repeat(2, 1) for _ in range(2)]
    hr, lr = _write_pairs(root / 'datasets', images)
    opt = _load_yml(TINY_YML)
    opt['name'] = 'kill_tiny'
    opt['network_g'].update(num_feat=8, num_block=1)
    opt['datasets']['train'].update(dataroot_gt=str(hr), dataroot_lq=str(lr), batch_size_per_gpu=1)
    opt['train']['total_iter'] = 20
    opt['logger'].update(print_freq=5, save_checkpoint_freq=5)
    del opt['datasets']['val'], opt['val']
    yml = _dump_yml(opt, root / 'train.yml')
    states = root / 'experiments' / opt['name'] / 'training_states'

    proc = subprocess.Popen([sys.executable, HOOKS, '-opt', str(yml)], cwd=root, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, MSCONV_TEST_HANG_SAVE='10.state'))
    deadline = time.time() + 240
    while not list(states.glob('10.state.*.hanging')):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return root, opt, yml, states


@pytest.mark.slow
def test_a_kill_while_saving_leaves_no_partial_checkpoint(killed_run):
    _, _, _, states = killed_run
    assert sorted(p.name for p in states.glob('*.state')) == ['5.state']
    partial, = states.glob('10.state.*.tmp')  # what the killed save had written, under its temporary name
    assert partial.stat().st_size > 0 and not _loads(partial)
    assert _loads(states / '5.state')


@pytest.mark.slow
def test_auto_resume_continues_from_the_last_complete_state(killed_run):
    root, opt, yml, states = killed_run
    # A truncated newest state, as BasicSR's own saving (in place) leaves it when killed.
    (states / '15.state').write_bytes((states / '5.state').read_bytes())
    _truncate(states / '15.state')

    proc = subprocess.run([sys.executable, '-m', 'msconv_plugin.train', '-opt', str(yml), '--auto_resume'], cwd=root,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    log = proc.stdout
    assert proc.returncode == 0, log
    assert 'Skipping unreadable training state experiments/kill_tiny/training_states/15.state' in log
    assert 'Removed ' in log and not list(states.glob('*.tmp'))  # the interrupted save's temporary file
    assert re.search(r'Resuming training from epoch: \d+, iter: 5\.', log) and re.search(r'iter:\s+20,', log)
    assert all(_loads(states / f'{i}.state') for i in (5, 10, 15, 20))
    net = build_network(opt['network_g'])
    models = root / 'experiments' / opt['name'] / 'models'
    for name in ('net_g_20.pth', 'net_g_latest.pth'):
        net.load_state_dict(torch.load(models / name)['params'], strict=True)
    assert not list(models.glob('*.tmp'))


# save_checkpoint and load_resume_state, in this process


def test_save_checkpoint_replaces_the_file_only_when_complete(tmp_path, monkeypatch):
    path = tmp_path / 'net_g_5.pth'
    assert checkpoints.save_checkpoint({'params': {'w': torch.ones(2)}}, str(path))
    save = torch.save

    def fail_half_way(obj, f):
        save(obj, f)
        f.truncate(f.tell() // 2)
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', fail_half_way)
    assert not checkpoints.save_checkpoint({'params': {'w': torch.zeros(2)}}, str(path), retries=2)
    assert torch.equal(torch.load(path)['params']['w'], torch.ones(2))  # the previous checkpoint is intact
    assert os.listdir(tmp_path) == ['net_g_5.pth']


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    """A BasicSR experiment under ``tmp_path`` with training states (and models) saved at iterations 5 and 10.

    Returns a function that parses the option file again with extra command-line arguments.
    """
    opt = _load_yml(TINY_YML)
    opt['name'] = 'resume_tiny'
    opt['network_g'] = dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2)
    yml = tmp_path / 'resume_tiny.yml'
    yml.write_text(yaml.safe_dump(opt, sort_keys=False))
    monkeypatch.chdir(tmp_path)

    def parse(*args):
        monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(yml), *args])
        return parse_options(str(tmp_path), is_train=True)[0]

    opt = parse()
    make_exp_dirs(opt)
    model = build_model(opt)
    for iteration in (5, 10):
        model.save(epoch=1, current_iter=iteration)
    assert sorted(os.listdir(opt['path']['training_states'])) == ['10.state', '5.state']
    assert sorted(os.listdir(opt['path']['models'])) == ['net_g_10.pth', 'net_g_5.pth']
    return parse


def test_auto_resume_skips_a_truncated_state(experiment, capsys):
    opt = experiment('--auto_resume')
    _truncate(Path(opt['path']['training_states']) / '10.state')
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 5
    assert opt['path']['resume_state'] == os.path.join('experiments', 'resume_tiny', 'training_states', '5.state')
    assert opt['path']['pretrain_network_g'].endswith('net_g_5.pth')
    skipped = 'Skipping unreadable training state experiments/resume_tiny/training_states/10.state'
    assert skipped in capsys.readouterr().out


def test_auto_resume_starts_afresh_when_no_state_is_readable(experiment, capsys):
    opt = experiment('--auto_resume')
    for name in ('5.state', '10.state'):
        _truncate(Path(opt['path']['training_states']) / name, to=0)
    assert basicsr.train.load_resume_state(opt) is None
    assert capsys.readouterr().out.count('Skipping unreadable training state') == 2


def test_an_unreadable_resume_state_path_is_named(experiment):
    opt = experiment('--force_yml', 'path:resume_state=experiments/resume_tiny/training_states/10.state')
    _truncate(Path(opt['path']['training_states']) / '10.state')
    with pytest.raises(ValueError, match=r'Cannot read the training state .*10\.state .*--auto_resume'):
        basicsr.train.load_resume_state(opt)
