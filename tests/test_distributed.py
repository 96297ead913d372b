"""Distributed training without a GPU: ``torch.distributed.run`` with two CPU processes (gloo), next to one process.

Two different 32x32 images are trained on whole (``gt_size`` is the image size, no flips or rotations), so every
iteration sees both images: as one batch of 2 in one process, or one image on each of two ranks. DDP averages the
two ranks' gradients, which is the gradient of the batch of 2: both runs take the same steps, up to rounding.
"""
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import torch

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from basicsr.utils.dist_util import get_dist_info

from msconv_plugin.basicsr_fixes import distributed
from tests.test_train_pipeline import TINY_YML, _dump_yml, _load_yml, _write_pairs

REPO = __file__.rsplit('/tests/', 1)[0]
HOOKS = f'{REPO}/tests/train_with_hooks.py'
TOTAL_ITER = 12
LOSS = re.compile(r'l_pix: (\S+)')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _option_file(root, folder, batch_size):
    rng = torch.Generator().manual_seed(0)
    images = [(torch.rand(3, 8, 8, generator=rng) * 255).byte().numpy().transpose(1, 2, 0).repeat(4, 0).repeat(4, 1)
              for _ in range(2)]  # smooth enough to learn something in a few steps
    hr, lr = _write_pairs(root / folder / 'datasets', images)
    opt = _load_yml(TINY_YML)
    opt['name'] = 'ddp_tiny'
    opt['network_g'].update(num_feat=8, num_block=1)
    opt['datasets']['train'].update(dataroot_gt=str(hr), dataroot_lq=str(lr), gt_size=32, use_hflip=False,
                                    use_rot=False, batch_size_per_gpu=batch_size)
    opt['datasets']['val'].update(dataroot_gt=str(hr), dataroot_lq=str(lr))
    opt['train'].update(total_iter=TOTAL_ITER, ema_decay=0)  # no EMA: rank 0 validates with the DDP-wrapped net_g
    opt['train']['optim_g']['lr'] = 1e-3
    opt['val']['val_freq'] = TOTAL_ITER
    opt['logger'].update(print_freq=1, save_checkpoint_freq=TOTAL_ITER)
    return _dump_yml(opt, root / folder / 'train.yml')


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The same tiny training, in one process (batch 2) and in two (batch 1 each); run side by side."""
    root = tmp_path_factory.mktemp('ddp')
    env = dict(os.environ, OMP_NUM_THREADS='1', MSCONV_TEST_DUMP_DIR='.')
    commands = {
        'single': [sys.executable, HOOKS, '-opt', str(_option_file(root, 'single', batch_size=2))],
        'dist': [
            sys.executable, '-m', 'torch.distributed.run', '--nnodes=1', '--nproc_per_node=2',
            '--master_addr=127.0.0.1', f'--master_port={_free_port()}', '--log-dir', 'ranks', '--redirects', '3',
            HOOKS, '-opt', str(_option_file(root, 'dist', batch_size=1)), '--launcher', 'pytorch'
        ],
    }
    start = time.time()
    procs = {
        name: subprocess.Popen(command, cwd=root / name, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        for name, command in commands.items()
    }
    outputs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
    print(f'single and 2-process runs side by side: {time.time() - start:.1f} s')
    # --redirects 3: each rank's stdout and stderr (where BasicSR's logger writes) in ranks/<run>/attempt_0/<rank>/
    rank_logs = {
        int(folder.name): (folder / 'stdout.log').read_text() + (folder / 'stderr.log').read_text()
        for folder in (root / 'dist' / 'ranks').glob('*/attempt_0/*')
    }
    for name, proc in procs.items():  # a failed rank's own output is in its log, not in torchrun's
        ranks = ''.join(f'\n--- rank {rank}:\n{log[-3000:]}' for rank, log in sorted(rank_logs.items()))
        assert proc.returncode == 0, f'{name}:\n{outputs[name]}' + (ranks if name == 'dist' else '')
    outputs['dist'] = rank_logs[0]
    return root, outputs, rank_logs


@pytest.mark.slow
def test_two_cpu_processes_train_with_gloo(runs):
    root, outputs, rank_logs = runs
    assert sorted(rank_logs) == [0, 1]
    assert 'World size (gpu number): 2' in outputs['dist']
    assert re.search(rf'iter:\s+{TOTAL_ITER},', outputs['dist']) and 'Validation tiny_val' in outputs['dist']
    exp = root / 'dist' / 'experiments' / 'ddp_tiny'
    for path in (f'models/net_g_{TOTAL_ITER}.pth', 'models/net_g_latest.pth', f'training_states/{TOTAL_ITER}.state'):
        assert (exp / path).is_file(), path


@pytest.mark.slow
def test_only_rank_0_logs_and_saves(runs):
    root, _, rank_logs = runs
    assert 'INFO' in rank_logs[0] and 'INFO' not in rank_logs[1]
    assert len(list((root / 'dist' / 'experiments' / 'ddp_tiny').glob('train_ddp_tiny_*.log'))) == 1


@pytest.mark.parametrize('rank', [0, 1])
def test_only_rank_0_writes_checkpoints(rank, tmp_path, monkeypatch):
    import basicsr.utils.dist_util
    from basicsr.models import build_model

    monkeypatch.setattr(basicsr.utils.dist_util, 'get_dist_info', lambda: (rank, 2))  # what master_only asks
    opt = dict(model_type='SRModel', scale=2, num_gpu=0, dist=False, is_train=False, path=dict(
        models=str(tmp_path), training_states=str(tmp_path)), network_g=dict(
            type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=4, num_block=1, upscale=2))
    build_model(opt).save(epoch=1, current_iter=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == (['5.state', 'net_g_5.pth'] if rank == 0 else [])


@pytest.mark.slow
def test_ranks_hold_identical_weights(runs):
    root, _, _ = runs
    rank0, rank1 = (torch.load(root / 'dist' / f'rank{rank}.pth') for rank in (0, 1))
    saved = torch.load(root / 'dist' / 'experiments' / 'ddp_tiny' / 'models' / 'net_g_latest.pth')['params']
    assert rank0.keys() == rank1.keys() == saved.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]) and torch.equal(rank0[key], saved[key]), key


@pytest.mark.slow
def test_two_processes_take_the_steps_of_one(runs):
    root, outputs, _ = runs
    losses = {name: [float(v) for v in LOSS.findall(output)] for name, output in outputs.items()}
    assert len(losses['single']) == len(losses['dist']) == TOTAL_ITER
    assert losses['dist'][-1] < 0.9 * losses['dist'][0]  # it learns
    assert losses['dist'] == pytest.approx(losses['single'], rel=1e-3)
    single, dist = (torch.load(root / name / 'rank0.pth') for name in ('single', 'dist'))
    for key in single:
        torch.testing.assert_close(dist[key], single[key], rtol=1e-4, atol=1e-6)


# The launchers' initialisation, in this process


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.multiprocessing, 'set_start_method', lambda method: None)
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def test_slurm_launcher_initialises_gloo_without_gpu(no_gpu, monkeypatch, tmp_path, capsys):
    scontrol = tmp_path / 'scontrol'  # slurm's tool that names the nodes; here one node, this machine
    scontrol.write_text('#!/bin/sh\necho 127.0.0.1\n')
    scontrol.chmod(0o755)
    monkeypatch.setenv('PATH', f'{tmp_path}:{os.environ["PATH"]}')
    for name, value in dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_NODELIST='node1', SLURM_LOCALID='0').items():
        monkeypatch.setenv(name, value)
    for name in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    distributed.init_dist('slurm', backend='nccl', port=_free_port())  # dist_params of a GPU option file
    assert 'replaced by gloo' in capsys.readouterr().out
    assert torch.distributed.get_backend() == 'gloo' and get_dist_info() == (0, 1)


def test_pytorch_launcher_without_gpu_needs_no_cuda(no_gpu, monkeypatch):
    def set_device(device):
        raise AssertionError('torch.cuda.set_device called on a machine without a GPU')

    monkeypatch.setattr(torch.cuda, 'set_device', set_device)
    for name, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                            MASTER_PORT=str(_free_port())).items():
        monkeypatch.setenv(name, value)
    distributed.init_dist('pytorch')
    assert torch.distributed.get_backend() == 'gloo' and get_dist_info() == (0, 1)
    # What the entry points do when the pipeline returns: the group ends, on this rank alone; again, nothing happens.
    distributed.end_process_group()
    assert not torch.distributed.is_initialized() and get_dist_info() == (0, 1)
    distributed.end_process_group()


def test_init_dist_is_the_plugins():
    import basicsr.utils.dist_util
    import basicsr.utils.options

    assert basicsr.utils.options.init_dist is basicsr.utils.dist_util.init_dist is distributed.init_dist
