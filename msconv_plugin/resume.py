"""Resuming that does what the option file says.

1. A training state is resumable only with its network checkpoints: ``--auto_resume`` takes the newest state whose
   ``net_<label>_<iter>.pth`` files all load (``check_networks``); a state whose network was truncated or lost is
   skipped like an unreadable state (``msconv_plugin.basicsr_fixes.checkpoints.load_resume_state``).
2. The rule for a changed learning rate or schedule: **the option file wins**. BasicSR's ``resume_training``
   loads the optimizers' and schedulers' saved state, which silently replaces the option file's learning rate,
   betas, weight decay, milestones, periods, gamma... with those of the first run. ``resume_with_options`` keeps
   the saved progress (iteration, Adam's moments) and applies the option file's values; when any differs, the
   learning rate of the current iteration is recomputed by replaying the new schedule up to it, and the changes
   are logged. So "lower the learning rate, then resume" works as said.
"""
import warnings
from os import path as osp

import torch
from basicsr.utils import get_root_logger

# Scheduler attributes that are progress, not settings (kept from the saved state).
_PROGRESS = ('optimizer', 'last_epoch', '_step_count', '_last_lr', '_get_lr_called_within_step', '_initial_step')


def check_networks(opt, iteration):
    """Raise ``ValueError`` when a network checkpoint the training state of ``iteration`` resumes from is missing or
    does not load (BasicSR's ``check_resume`` points ``pretrain_network_<label>`` at ``net_<label>_<iter>.pth``)."""
    for key in opt:
        if key.startswith('network_'):
            path = osp.join(opt['path']['models'], f'net_{key[len("network_"):]}_{iteration}.pth')
            try:
                torch.load(path, map_location='cpu', weights_only=True)
            except Exception as error:
                raise ValueError(f'its network checkpoint {path} does not load: {type(error).__name__}') from None


def _settings(scheduler):
    return {key: value for key, value in vars(scheduler).items() if key not in _PROGRESS}


def _replay(scheduler):
    """Set the learning rates of ``scheduler``'s optimizer to what its schedule gives at its current iteration."""
    target = scheduler.last_epoch
    for group in scheduler.optimizer.param_groups:
        group['lr'] = group['initial_lr']
    scheduler.last_epoch = 0
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(target):
            scheduler.step()


def resume_with_options(model, resume_state):
    """``model.resume_training(resume_state)`` (BasicSR's), then the option file's optimizer and scheduler settings
    over the saved ones (see the module docstring). Returns the changes applied (str), also logged."""
    fresh_groups = [[{k: v for k, v in group.items() if k != 'params'} for group in optimizer.param_groups]
                    for optimizer in model.optimizers]
    fresh_schedules = [_settings(scheduler) for scheduler in model.schedulers]
    type(model).resume_training(model, resume_state)
    changes = []
    for i, (optimizer, groups) in enumerate(zip(model.optimizers, fresh_groups)):
        for group, fresh in zip(optimizer.param_groups, groups):
            for key, value in fresh.items():
                if key != 'lr' and group.get(key) != value:  # 'lr' is the scheduled value of this iteration
                    changes.append(f'optimizer {i} {key}: {group.get(key)} -> {value}')
                    group[key] = value
    for i, (scheduler, settings) in enumerate(zip(model.schedulers, fresh_schedules)):
        for key, value in settings.items():
            if key != 'base_lrs' and getattr(scheduler, key, None) != value:
                changes.append(f'scheduler {i} {key}: {getattr(scheduler, key, None)} -> {value}')
            setattr(scheduler, key, value)
    if changes:
        for scheduler in model.schedulers:
            _replay(scheduler)
        lrs = ', '.join(f'{group["lr"]:.3g}' for optimizer in model.optimizers for group in optimizer.param_groups)
        get_root_logger().warning('Resuming with the option file\'s settings where they differ from the saved '
                                  f'state: {"; ".join(changes)}. Learning rate now: {lrs}.')
    return changes
