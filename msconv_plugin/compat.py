"""Make BasicSR 1.4.2, the only release on PyPI, work on today's torch/torchvision and on CPU-only machines.

``msconv_plugin/__init__.py`` applies this module before anything of BasicSR is imported. Nothing in
site-packages is edited: every fix replaces a module attribute at import time, and each one is a no-op where
the installed BasicSR no longer needs it.

Fixes:
1. ``torchvision.transforms.functional_tensor`` was renamed ``_functional_tensor`` (torchvision 0.17); BasicSR
   imports the old name in ``basicsr/data/degradations.py``, so ``import basicsr`` fails. We register the new
   module under the old name.
2. ``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` to place the training state, which
   fails on a machine without a GPU. We replace it with a loader that maps the state to the current CUDA device
   when there is one and to the CPU otherwise. It also survives a run killed while saving: with
   ``--auto_resume`` an unreadable (truncated) training state is skipped, with a note, for the newest one that
   loads, and the temporary files of interrupted saves are removed.
3. Distributed training without a GPU (``--launcher pytorch|slurm`` on CPUs, gloo backend). BasicSR assumes CUDA
   in three places, each replaced here; with a GPU, BasicSR's own code runs:
   a. ``init_dist`` (looked up as ``basicsr.utils.options.init_dist``) pins each process to GPU
      ``rank % torch.cuda.device_count()`` (a division by zero without a GPU) and defaults to nccl. Without a
      GPU ours initialises gloo, for both launchers.
   b. ``BaseModel.model_to_device`` wraps the network in ``DistributedDataParallel(device_ids=[
      torch.cuda.current_device()])``. A CPU network is wrapped without ``device_ids``.
   c. ``BaseModel.reduce_loss_dict`` sums the losses onto rank 0 only (``dist.reduce``), leaving the other ranks
      with partial sums. Ours averages onto every rank (``all_reduce``), so every rank logs the same losses and
      takes the same decision when they stop being finite (``safeguards``), instead of waiting in a collective
      for a rank that has stopped.
   What needed no change: ``EnlargedSampler`` (pure index arithmetic), ``SRModel.dist_validation`` (rank 0
   validates; ``torch.cuda.empty_cache()`` is a no-op without CUDA), logging and saving on rank 0 only
   (``master_only``, ``get_root_logger``).
4. VGG weights offline. The perceptual loss (``PerceptualLoss`` -> ``VGGFeatureExtractor``) loads torchvision's VGG
   ImageNet weights from ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (relative to the working directory)
   when that file exists, and otherwise downloads them with torchvision's deprecated ``pretrained=True``: a
   ``URLError`` without network, and a file no option can point at. Ours never downloads: the weights come from
   ``perceptual_opt.vgg_weights``, else ``$MSCONV_VGG19_PATH`` (``MSCONV_<VGG_TYPE>_PATH`` for other types), else
   BasicSR's place, and when none exists building the model fails with ``FileNotFoundError`` naming the file, where
   to put it and where to get it (``find_vgg_weights``). See docs/gan.md.

Checkpoints written atomically and clear errors for bad input (a model that does not fit a checkpoint, unreadable
or empty datasets, a loss that is no longer finite) are in ``msconv_plugin.safeguards``, applied from here too.
"""
import contextlib
import functools
import importlib
import os
import re
import sys
from os import path as osp

import torch
import torchvision

# BasicSR's own version of every attribute we replace, taken once: ``apply`` may run more than once.
_SHIPPED = {}


def replace(owner, name, new):
    """``setattr(owner, name, new)``, remembering the value it had first (see ``shipped``)."""
    _SHIPPED.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, new)


def shipped(owner, name):
    """The value ``owner.name`` had before ``replace`` changed it (BasicSR's own function)."""
    return _SHIPPED.get((owner, name), getattr(owner, name))


def _alias_functional_tensor():
    old_name = 'torchvision.transforms.functional_tensor'
    try:
        importlib.import_module(old_name)
    except ImportError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')


# Fix 2: resuming


# The temporary files of ``safeguards.save_checkpoint``: ``<checkpoint name>.<pid>.tmp``.
INTERRUPTED_SAVE = re.compile(r'.+\.\d+\.tmp$')


def _load_state(path, device):
    state = torch.load(path, map_location=device)
    if not isinstance(state, dict) or 'iter' not in state:
        raise ValueError('not a BasicSR training state (no "iter" entry)')
    return state


def _remove_interrupted_saves(opt):
    for folder in (opt['path']['training_states'], opt['path']['models']):
        if osp.isdir(folder):
            for name in os.listdir(folder):
                if INTERRUPTED_SAVE.match(name):
                    os.remove(osp.join(folder, name))
                    print(f'Removed {osp.join(folder, name)}, left by an interrupted save.', flush=True)


def load_resume_state(opt):
    """CPU-safe replacement of ``basicsr.train.load_resume_state`` (same contract) that skips unreadable states.

    With ``--auto_resume`` the newest training state of the experiment that loads is used; newer ones that do not
    load (a run killed while writing them with a BasicSR that wrote in place) are named and skipped. An explicit
    ``path.resume_state`` that does not load is an error naming the file.
    """
    from basicsr.train import check_resume, scandir

    from msconv_plugin.resume import check_networks

    device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else 'cpu'
    resume_state = None
    if opt['auto_resume']:
        if opt['rank'] == 0:
            _remove_interrupted_saves(opt)
        state_path = osp.join('experiments', opt['name'], 'training_states')
        if osp.isdir(state_path):
            states = scandir(state_path, suffix='state', recursive=False, full_path=False)
            for iteration in sorted((int(float(v.split('.state')[0])) for v in states), reverse=True):
                path = osp.join(state_path, f'{iteration}.state')
                try:
                    state = _load_state(path, device)
                    check_networks(opt, iteration)  # a state resumes only with its network
                except Exception as error:  # truncated zip, EOF, unpickling error...: any means "cannot resume"
                    print(f'Skipping unreadable training state {path} ({type(error).__name__}: {error}).',
                          flush=True)
                    continue
                resume_state = state
                opt['path']['resume_state'] = path
                break
    elif opt['path'].get('resume_state'):
        path = opt['path']['resume_state']
        try:
            resume_state = _load_state(path, device)
        except Exception as error:
            raise ValueError(f'Cannot read the training state path.resume_state = {path} '
                             f'({type(error).__name__}: {error}). Point it at a complete state, or use '
                             '--auto_resume to take the newest readable one.') from None

    if resume_state is not None:
        check_resume(opt, resume_state['iter'])
    return resume_state


# Fix 3: distributed training without a GPU


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


# Fix 4: VGG weights from a local file, never downloaded

PRETRAINED_MODELS = osp.join('experiments', 'pretrained_models')  # BasicSR's folder for VGG_PRETRAIN_PATH


def find_vgg_weights(vgg_type='vgg19', vgg_weights=None):
    """The local file of torchvision's ImageNet weights for ``vgg_type``, for the perceptual loss.

    Looked for, in order: ``vgg_weights`` (``perceptual_opt.vgg_weights``), the environment variable
    ``MSCONV_<VGG_TYPE>_PATH`` (``MSCONV_VGG19_PATH``), and BasicSR's place
    ``experiments/pretrained_models/<torchvision's file name>`` (``vgg19-dcbb9e9d.pth``) under the working directory.
    A path that is given but missing is an error, not a reason to look further.

    Args:
        vgg_type (str): 'vgg19', 'vgg16_bn', ... as ``VGGFeatureExtractor``'s ``vgg_type``. Default: 'vgg19'.
        vgg_weights (str | None): Path of the file, or None. Default: None.

    Returns:
        str: The path of an existing file.

    Raises:
        FileNotFoundError: Names the file, where to put it and where to download it.
    """
    url = torchvision.models.get_model_weights(vgg_type).IMAGENET1K_V1.url
    file_name = osp.basename(url)
    variable = f'MSCONV_{vgg_type.upper()}_PATH'
    default = osp.join(PRETRAINED_MODELS, file_name)
    if vgg_weights:
        path, source = osp.expanduser(vgg_weights), 'given by perceptual_opt.vgg_weights'
    elif os.environ.get(variable):
        path, source = osp.expanduser(os.environ[variable]), f'given by {variable}'
    else:
        path, source = default, f'BasicSR\'s default; neither perceptual_opt.vgg_weights nor {variable} is set'
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'The perceptual loss needs torchvision\'s {vgg_type} ImageNet weights, {file_name}, and there is no '
            f'file {osp.abspath(path)} ({source}). '
            f'msconv_plugin never downloads them. Download {url} (on a machine with network access), then put '
            f'{file_name} at {default} under the directory you run from ({os.getcwd()}), or point '
            f'perceptual_opt.vgg_weights in the option file or the environment variable {variable} at it. '
            'See docs/gan.md.')
    return path


class _TorchvisionVGGWithoutDownload:
    """Stands in for ``torchvision.models.vgg`` in ``basicsr.archs.vgg_arch``: ``vgg19(pretrained=False)`` builds
    with ``weights=None`` (no deprecation warning); ``pretrained=True``, a download, is refused."""

    def __getattr__(self, vgg_type):
        return functools.partial(self.build, vgg_type)

    @staticmethod
    def build(vgg_type, pretrained=False):
        if pretrained:
            raise RuntimeError(f'msconv_plugin does not download the {vgg_type} weights (see find_vgg_weights).')
        # The file's weights replace these at once: torchvision's own initialisation would only cost time.
        return getattr(torchvision.models, vgg_type)(weights=None, init_weights=False)


@contextlib.contextmanager
def _module_globals(module, **values):
    """Set globals of ``module`` for the duration of the block (model building is single-threaded)."""
    previous = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(module, name, value)


def vgg_feature_extractor_init(self, layer_name_list, vgg_type='vgg19', *args, vgg_weights=None, **kwargs):
    """``VGGFeatureExtractor.__init__`` (same arguments, plus ``vgg_weights``) that loads the weights from the file
    ``find_vgg_weights`` finds, and fails before anything else when there is none.

    BasicSR's ``__init__`` loads ``VGG_PRETRAIN_PATH`` when it exists and builds the network with the ``vgg`` module
    it imported; both are read from its module's globals, so they are set around it.
    """
    from basicsr.archs import vgg_arch

    path = find_vgg_weights(vgg_type, vgg_weights)
    with _module_globals(vgg_arch, VGG_PRETRAIN_PATH=path, vgg=_TorchvisionVGGWithoutDownload()):
        shipped(vgg_arch.VGGFeatureExtractor, '__init__')(self, layer_name_list, vgg_type, *args, **kwargs)


def perceptual_loss_init(self, layer_weights, *args, vgg_weights=None, **kwargs):
    """``PerceptualLoss.__init__`` that also takes ``vgg_weights`` (``perceptual_opt.vgg_weights``) and hands it to
    the ``VGGFeatureExtractor`` it builds (by the name ``basic_loss`` imported)."""
    from basicsr.losses import basic_loss

    extractor = functools.partial(basic_loss.VGGFeatureExtractor, vgg_weights=vgg_weights)
    with _module_globals(basic_loss, VGGFeatureExtractor=extractor):
        shipped(basic_loss.PerceptualLoss, '__init__')(self, layer_weights, *args, **kwargs)


def apply():
    """Apply every fix; safe to call more than once."""
    _alias_functional_tensor()
    import basicsr.train
    import basicsr.utils.dist_util
    import basicsr.utils.options
    from basicsr.archs.vgg_arch import VGGFeatureExtractor
    from basicsr.losses.basic_loss import PerceptualLoss
    from basicsr.models.base_model import BaseModel

    basicsr.train.load_resume_state = load_resume_state
    # parse_options calls the init_dist it imported by name; dist_util's is replaced for direct callers.
    basicsr.utils.options.init_dist = init_dist
    basicsr.utils.dist_util.init_dist = init_dist
    replace(BaseModel, 'model_to_device', model_to_device)
    replace(BaseModel, 'reduce_loss_dict', reduce_loss_dict)
    replace(VGGFeatureExtractor, '__init__', vgg_feature_extractor_init)
    replace(PerceptualLoss, '__init__', perceptual_loss_init)

    from msconv_plugin import safeguards

    safeguards.apply()


apply()
