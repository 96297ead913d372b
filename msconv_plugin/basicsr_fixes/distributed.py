"""Distributed training without a GPU (``--launcher pytorch|slurm`` on CPUs, gloo backend).

BasicSR assumes CUDA in three places, each replaced here; with a GPU, BasicSR's own code runs:

a. ``init_dist`` (looked up as ``basicsr.utils.options.init_dist``) pins each process to GPU
   ``rank % torch.cuda.device_count()`` (a division by zero without a GPU) and defaults to nccl. Without a GPU ours
   initialises gloo, for both launchers.
b. ``BaseModel.model_to_device`` wraps the network in ``DistributedDataParallel(device_ids=[
   torch.cuda.current_device()])``. A CPU network is wrapped without ``device_ids``.
c. ``BaseModel.reduce_loss_dict`` sums the losses onto rank 0 only (``dist.reduce``), leaving the other ranks with
   partial sums. Ours averages onto every rank (``all_reduce``), so every rank logs the same losses and takes the
   same decision when they stop being finite (``errors``), instead of waiting in a collective for a rank that has
   stopped.

Not a patch: BasicSR never ends its process group. Our entry points (``python -m msconv_plugin.train`` and
``.test``) call ``end_process_group`` when the pipeline returns, so that no rank exits with gloo's threads still
running (a rank of a CPU run did abort at exit, 'terminate called without an active exception', which torchrun
reports as a failed run).

What needed no change: ``EnlargedSampler`` (pure index arithmetic), ``SRModel.dist_validation`` (rank 0 validates;
``torch.cuda.empty_cache()`` is a no-op without CUDA), logging and saving on rank 0 only (``master_only``,
``get_root_logger``).
"""
import os

import torch

from .patching import replace, shipped

def _init_dist_pytorch_cpu(backend, **kwargs):
    """``basicsr.utils.dist_util._init_dist_pytorch`` without pinning a GPU (torchrun's environment does the rest)."""
    torch.distributed.init_process_group(backend=backend, **kwargs)


def _init_dist_slurm_cpu(backend, port=None):
    """``basicsr.utils.dist_util._init_dist_slurm`` without the GPU: the same environment, node-local rank from
    ``SLURM_LOCALID``."""
    import subprocess

    proc_id = int(os.environ['SLURM_PROCID'])
    node_list = os.environ['SLURM_NODELIST']
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')  # torch.distributed's default port, as BasicSR
    os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['RANK'] = str(proc_id)
    torch.distributed.init_process_group(backend=backend)


def init_dist(launcher, backend=None, **kwargs):
    """``basicsr.utils.dist_util.init_dist`` that also runs on machines without a GPU.

    Args:
        launcher (str): 'pytorch' (torchrun) or 'slurm'.
        backend (str | None): None picks nccl where CUDA is available (BasicSR's default) and gloo otherwise.
            Without a GPU an explicit nccl (``dist_params.backend`` of a slurm option file) cannot work: gloo is
            used instead, with a note.
        **kwargs: ``port`` (slurm), or arguments of ``torch.distributed.init_process_group`` (pytorch).
    """
    import torch.multiprocessing as mp
    from basicsr.utils import dist_util

    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if torch.cuda.is_available():
        backend = backend or 'nccl'
        initialise = {'pytorch': dist_util._init_dist_pytorch, 'slurm': dist_util._init_dist_slurm}
    else:
        if backend not in (None, 'gloo'):
            print(f'No GPU here: distributed backend {backend!r} replaced by gloo.', flush=True)
        backend = 'gloo'
        initialise = {'pytorch': _init_dist_pytorch_cpu, 'slurm': _init_dist_slurm_cpu}
    if launcher not in initialise:
        raise ValueError(f'Invalid launcher type: {launcher}')
    initialise[launcher](backend, **kwargs)


def end_process_group():
    """Destroy the default process group, if one was started (a no-op otherwise). Local to the rank: no
    collective, so a rank that finishes first does not wait for rank 0's validation and saving."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def model_to_device(self, net):
    """``BaseModel.model_to_device`` that also wraps a CPU network in ``DistributedDataParallel``.

    BasicSR passes ``device_ids=[torch.cuda.current_device()]``; a CPU module takes no ``device_ids``.
    """
    from basicsr.models.base_model import BaseModel
    from torch.nn.parallel import DistributedDataParallel

    if self.opt['dist'] and self.device.type == 'cpu':
        return DistributedDataParallel(
            net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))
    return shipped(BaseModel, 'model_to_device')(self, net)


def reduce_loss_dict(self, loss_dict):
    """``BaseModel.reduce_loss_dict`` with the mean of every loss over the ranks on every rank (``all_reduce``).

    Returns:
        OrderedDict: loss name -> float, averaged over the ranks under distributed training.
    """
    from collections import OrderedDict

    with torch.no_grad():
        if self.opt['dist']:
            losses = torch.stack(list(loss_dict.values()))
            torch.distributed.all_reduce(losses)
            loss_dict = dict(zip(loss_dict, losses / self.opt['world_size']))
        return OrderedDict((name, value.mean().item()) for name, value in loss_dict.items())


def apply():
    import basicsr.utils.dist_util
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    # parse_options calls the init_dist it imported by name; dist_util's is replaced for direct callers.
    replace(basicsr.utils.options, 'init_dist', init_dist)
    replace(basicsr.utils.dist_util, 'init_dist', init_dist)
    replace(BaseModel, 'model_to_device', model_to_device)
    replace(BaseModel, 'reduce_loss_dict', reduce_loss_dict)
