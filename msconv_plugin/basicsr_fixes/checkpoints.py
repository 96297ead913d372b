"""Checkpoints that survive a kill, and resuming on machines without a GPU.

1. Atomic checkpoints. ``BaseModel.save_network`` and ``save_training_state`` ``torch.save`` straight into
   ``net_g_<iter>.pth`` / ``<iter>.state``: a run killed while writing leaves a truncated file that
   ``--auto_resume`` then picks as the latest. Ours write ``<name>.<pid>.tmp`` in the same folder, flush it to disk
   and ``os.replace`` it onto the name (atomic on POSIX and Windows), so a checkpoint file is complete or absent.
2. ``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` to place the training state, which
   fails on a machine without a GPU. Ours maps the state to the current CUDA device when there is one and to the
   CPU otherwise. It also survives a run killed while saving: with ``--auto_resume`` an unreadable (truncated)
   training state is skipped, with a note, for the newest one that loads, and the temporary files of interrupted
   saves are removed.
3. A truncated network checkpoint. ``load_network_checkpoint`` reads a network file of an experiment
   (``experiments/<name>/models/net_<label>_latest.pth`` or ``net_<label>_<iter>.pth``) and, when it does not load
   (cut by a full disk, a copy or a BasicSR that saved in place), falls back with a warning to the newest complete
   ``net_<label>_<iter>.pth`` before it, as ``--auto_resume`` does for training states. Used by
   ``BaseModel.load_network`` (test and training with ``pretrain_network_*``), inference and the demo.
"""
import logging
import os
import re
from collections import OrderedDict
from os import path as osp

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only

from .patching import replace


def _strip_module(key):
    """A parameter name without the ``module.`` that (Distributed)DataParallel adds."""
    return key[len('module.'):] if key.startswith('module.') else key


# 1. Atomic checkpoints


def save_checkpoint(obj, path, retries=3):
    """``torch.save(obj, path)`` that never leaves a partial ``path``: a temporary file, then ``os.replace``.

    Write errors are retried, then logged and ignored (BasicSR's choice: a failed checkpoint does not stop training).

    Args:
        obj: What to save.
        path (str): Checkpoint file.
        retries (int): Attempts before giving up. Default: 3.

    Returns:
        bool: Whether ``path`` was written.
    """
    temporary = f'{path}.{os.getpid()}.tmp'  # the same folder: os.replace is atomic within one file system
    for attempt in range(1, retries + 1):
        try:
            with open(temporary, 'wb') as f:
                torch.save(obj, f)
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename, so a power cut cannot leave an empty checkpoint
            os.replace(temporary, path)
            return True
        except (OSError, RuntimeError) as error:  # torch's zip writer reports a failed write as RuntimeError
            if osp.exists(temporary):
                os.remove(temporary)
            get_root_logger().warning(f'Cannot save {path} ({error}); {retries - attempt} attempts left.')
    get_root_logger().warning(f'Still cannot save {path}. Just ignore it.')
    return False


@master_only
def save_network(self, net, net_label, current_iter, param_key='params'):
    """``BaseModel.save_network`` (same arguments and file names), written with ``save_checkpoint``."""
    current_iter = 'latest' if current_iter == -1 else current_iter
    nets = net if isinstance(net, list) else [net]
    param_keys = param_key if isinstance(param_key, list) else [param_key]
    assert len(nets) == len(param_keys), 'The lengths of net and param_key should be the same.'
    save_dict = {}
    for net_, param_key_ in zip(nets, param_keys):
        state_dict = self.get_bare_model(net_).state_dict()
        save_dict[param_key_] = OrderedDict((_strip_module(key), param.cpu()) for key, param in state_dict.items())
    save_checkpoint(save_dict, osp.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth'))


@master_only
def save_training_state(self, epoch, current_iter):
    """``BaseModel.save_training_state`` (same contents and file name), written with ``save_checkpoint``."""
    if current_iter != -1:
        state = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [o.state_dict() for o in self.optimizers],
            'schedulers': [s.state_dict() for s in self.schedulers],
        }
        save_checkpoint(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))


# 2. Resuming (and 3. truncated network checkpoints)

# A network checkpoint BasicSR writes: net_<label>_<iter>.pth, net_<label>_latest.pth (the end of training).
NETWORK_CHECKPOINT = re.compile(r'(?P<label>net_\w+?)_(?P<iter>latest|\d+)\.pth$')


class CheckpointReadError(ValueError):
    """A network checkpoint that does not load, with no complete one of the same experiment before it."""


def _earlier_checkpoints(path):
    """The numbered checkpoints of the network of ``path`` in its folder, newest first, that were saved before it
    (all of them for ``_latest``); empty for a file BasicSR did not name."""
    match = NETWORK_CHECKPOINT.fullmatch(osp.basename(path))
    folder = osp.dirname(path) or '.'
    if match is None or not osp.isdir(folder):
        return []
    label, last = match['label'], match['iter']
    found = []
    for name in os.listdir(folder):
        other = NETWORK_CHECKPOINT.fullmatch(name)
        if other and other['label'] == label and other['iter'] != 'latest' and (
                last == 'latest' or int(other['iter']) < int(last)):
            found.append((int(other['iter']), osp.join(folder, name)))
    return [candidate for _, candidate in sorted(found, reverse=True)]


def load_network_checkpoint(path, fallback=True, **load_kwargs):
    """``torch.load(path, **load_kwargs)`` (default ``map_location='cpu'``) for a network checkpoint; return the
    loaded object and the path it came from.

    When ``path`` does not load and ``fallback`` is true, the newest complete ``net_<label>_<iter>.pth`` saved before
    it in the same folder is used instead, with a warning naming both files. Raises ``CheckpointReadError`` (naming
    the file) when nothing loads; ``FileNotFoundError`` when ``path`` does not exist.
    """
    load_kwargs.setdefault('map_location', 'cpu')
    if not osp.isfile(path):
        raise FileNotFoundError(f'Network checkpoint not found: {path}')
    try:
        return torch.load(path, **load_kwargs), path
    except Exception as error:  # truncated zip, EOF, unpickling error...
        failure = f'{type(error).__name__}: {error}'
    candidates = _earlier_checkpoints(path) if fallback else []
    for candidate in candidates:
        try:
            checkpoint = torch.load(candidate, **load_kwargs)
        except Exception:
            continue
        message = (f'The network checkpoint {path} does not load ({failure}): using {candidate}, the newest '
                   'complete checkpoint of this network before it.')
        logging.getLogger('basicsr').warning(message)  # BasicSR's log in a run; stderr otherwise (no set-up here)
        return checkpoint, candidate
    tried = f'; no earlier net_*_<iter>.pth of it in {osp.dirname(path) or "."} loads either' if candidates else ''
    raise CheckpointReadError(f'Cannot read the network checkpoint {path} ({failure}): the file is truncated or not '
                              f'a PyTorch checkpoint{tried}. Point to a complete checkpoint.')


# The temporary files of ``save_checkpoint``: ``<checkpoint name>.<pid>.tmp``.
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


def apply():
    import basicsr.train
    from basicsr.models.base_model import BaseModel

    replace(BaseModel, 'save_network', save_network)
    replace(BaseModel, 'save_training_state', save_training_state)
    replace(basicsr.train, 'load_resume_state', load_resume_state)
