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
   when there is one and to the CPU otherwise.
"""
import importlib
import sys

import torch


def _alias_functional_tensor():
    old_name = 'torchvision.transforms.functional_tensor'
    try:
        importlib.import_module(old_name)
    except ImportError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')


def load_resume_state(opt):
    """CPU-safe replacement of ``basicsr.train.load_resume_state`` (same contract)."""
    from basicsr.train import check_resume, osp, scandir

    resume_state_path = None
    if opt['auto_resume']:
        state_path = osp.join('experiments', opt['name'], 'training_states')
        if osp.isdir(state_path):
            states = list(scandir(state_path, suffix='state', recursive=False, full_path=False))
            if states:
                latest = max(float(v.split('.state')[0]) for v in states)
                resume_state_path = osp.join(state_path, f'{latest:.0f}.state')
                opt['path']['resume_state'] = resume_state_path
    elif opt['path'].get('resume_state'):
        resume_state_path = opt['path']['resume_state']

    if resume_state_path is None:
        return None
    device = torch.device('cuda', torch.cuda.current_device()) if torch.cuda.is_available() else 'cpu'
    resume_state = torch.load(resume_state_path, map_location=device)
    check_resume(opt, resume_state['iter'])
    return resume_state


def apply():
    """Apply every fix; safe to call more than once."""
    _alias_functional_tensor()
    import basicsr.train

    basicsr.train.load_resume_state = load_resume_state


apply()
