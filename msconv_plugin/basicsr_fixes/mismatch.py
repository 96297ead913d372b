"""A checkpoint that does not fit the network.

``BaseModel.load_network`` fails with torch's dump of every key (or with a bare ``KeyError: 'params'``, or a
zip-reader error for a truncated file). When loading fails, ours raises ``ValueError`` naming the file and
summarising missing and unexpected keys and shape mismatches, and for MS³ networks the ``n_scales`` /
``interaction`` read off both sides.
"""
import re
from collections import OrderedDict
from os import path as osp

from .checkpoints import CheckpointReadError, _strip_module, load_network_checkpoint
from .patching import replace, shipped

_CROSS_SCALE_KERNEL = re.compile(r'cross_scale\.(\d+)to(\d+)\.')


def _group(keys, details=None):
    """``body.0.x.weight, body.1.x.weight`` -> ``body.*.x.weight (×2)``: one entry per pattern of block numbers
    (and per detail, e.g. a shape, when ``details`` maps each key to one)."""
    groups = OrderedDict()
    for key in keys:
        pattern = re.sub(r'(?<=\.)\d+(?=\.)', '*', key)
        groups.setdefault((pattern, details[key] if details else ''), []).append(key)
    return [(found[0] if len(found) == 1 else f'{pattern} (×{len(found)})', detail)
            for (pattern, detail), found in groups.items()]


def _summarise(keys, limit=6):
    """Grouped keys (``_group``) on one line, at most ``limit`` entries."""
    parts = [name for name, _ in _group(keys)]
    more = f', … and {len(parts) - limit} more' if len(parts) > limit else ''
    return ', '.join(parts[:limit]) + more


def ms3_layout(state_dict):
    """What a state dict says about its MS³ layers: e.g. ``n_scales=3, interaction='full', branch width 21``.

    Returns None when it has no MS³ layer. ``n_scales`` is read off the cross-scale kernel names ('jtoi'),
    ``interaction`` from whether non-adjacent branches talk (at 2 scales both interactions are the same layer).
    """
    same_scale = [key for key in state_dict if key.endswith('same_scale.weight')]
    if not same_scale:
        return None
    pairs = {tuple(map(int, m.groups())) for m in map(_CROSS_SCALE_KERNEL.search, state_dict) if m}
    n_scales = max(max(pair) for pair in pairs) if pairs else 1
    if n_scales == 1:
        interaction = 'none'
    elif n_scales == 2:
        interaction = "'adjacent' or 'full' (the same at 2 scales)"
    else:
        interaction = repr('full' if any(abs(i - j) > 1 for i, j in pairs) else 'adjacent')
    return (f'n_scales={n_scales}, interaction={interaction}, '
            f'branch width {state_dict[same_scale[0]].shape[0]}')


# Per network with a ``scope`` option: the layer that becomes an S2 layer only with scope 'whole', and what its
# default scope was over time (a checkpoint trained without an explicit scope has the default of its day).
_WHOLE_SCOPE_MARKERS = {
    'MS3EDSR': ('conv_after_body', "MS3EDSR's default scope is 'trunk' since 2026-12-04; it was 'whole' from "
                                   "2026-12-01 to 2026-12-04"),
    'MS3SRResNet': ('conv_hr', "MS3SRResNet's default scope is 'whole'"),
    'MS3RRDBNet': ('conv_body', "MS3RRDBNet's default scope is 'trunk'"),
}


def checkpoint_scope(net_type, state_dict):
    """The ``scope`` a state dict of ``net_type`` (``MS3EDSR``, ``MS3SRResNet`` or ``MS3RRDBNet``) was saved with,
    or None when the keys do not say: 'whole' makes the last convolutions of the trunk (or upsampler) S2 layers,
    'trunk' fuses the branches and keeps the plain network's ``conv_last``."""
    if net_type not in _WHOLE_SCOPE_MARKERS:
        return None
    marker = _WHOLE_SCOPE_MARKERS[net_type][0]
    if any(key.startswith(f'{marker}.same_scale.') for key in state_dict):
        return 'whole'
    if 'conv_last.weight' in state_dict and any(key.startswith('fuse.convs.') for key in state_dict):
        return 'trunk'
    return None


def describe_mismatch(net, state_dict, load_path, param_key):
    """Why ``state_dict`` does not load into ``net`` (strictly), or None when it does."""
    net_state = net.state_dict()
    missing = sorted(set(net_state) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(net_state))
    shapes = {
        key: f'{tuple(state_dict[key].shape)} vs {tuple(net_state[key].shape)}'
        for key in net_state if key in state_dict and state_dict[key].shape != net_state[key].shape
    }
    if not (missing or unexpected or shapes):
        return None
    lines = [f'The checkpoint {load_path} (param key {param_key!r}) does not fit the network '
             f'{type(net).__name__}:']
    if missing:
        lines.append(f'  {len(missing)} parameters of the network are not in the checkpoint: {_summarise(missing)}')
    if unexpected:
        lines.append(f'  {len(unexpected)} parameters of the checkpoint are not in the network: '
                     f'{_summarise(unexpected)}')
    if shapes:
        lines.append(f'  {len(shapes)} parameters differ in shape (checkpoint vs network):')
        grouped = _group(shapes, shapes)
        lines += [f'    {name}: {shape}' for name, shape in grouped[:8]]
        if len(grouped) > 8:
            lines.append(f'    … and {len(grouped) - 8} more')
    net_layout, checkpoint_layout = ms3_layout(net_state), ms3_layout(state_dict)
    if net_layout or checkpoint_layout:
        lines.append(f'  MS³ layers: the network has {net_layout or "none"}; the checkpoint has '
                     f'{checkpoint_layout or "none (a plain network: convert it, e.g. with edsr_to_ms3edsr)"}.')
    net_type = type(net).__name__
    scope = checkpoint_scope(net_type, state_dict)
    if scope and scope != getattr(net, 'scope', scope):
        lines.append(f"  The checkpoint is an {net_type} of scope '{scope}', the network has scope '{net.scope}': "
                     f"set network_g.scope: {scope} ({_WHOLE_SCOPE_MARKERS[net_type][1]}).")
    if checkpoint_layout:
        lines.append('  Build the network with the options the checkpoint was trained with (n_scales, interaction, '
                     'scope, num_feat, num_block, ...).')
    lines.append('  (strict_load_* = false loads only the parameters that fit.)')
    return '\n'.join(lines)


def _explain_load_failure(net, load_path, param_key):
    """A message for a failed ``load_network``, or None to let BasicSR's error through."""
    try:
        checkpoint, _ = load_network_checkpoint(load_path, fallback=False)
    except (FileNotFoundError, CheckpointReadError) as error:
        return str(error)
    if param_key is not None:
        if param_key not in checkpoint and 'params' in checkpoint:
            param_key = 'params'  # BasicSR's fallback for checkpoints without EMA weights
        if param_key not in checkpoint:
            return (f'The network checkpoint {load_path} has no {param_key!r} entry; it has '
                    f'{_summarise(sorted(map(str, checkpoint)))}. Set param_key_* to one of them (~ for a bare '
                    'state dict).')
        checkpoint = checkpoint[param_key]
    state_dict = {_strip_module(key): value for key, value in checkpoint.items()}
    return describe_mismatch(net, state_dict, load_path, param_key)


def load_network(self, net, load_path, strict=True, param_key='params'):
    """``BaseModel.load_network``; a truncated checkpoint of an experiment falls back to the newest complete one
    before it (``load_network_checkpoint``); when loading fails, a ``ValueError`` that says what does not fit."""
    from basicsr.models.base_model import BaseModel

    try:
        shipped(BaseModel, 'load_network')(self, net, load_path, strict, param_key)
        return
    except Exception as error:
        if not osp.isfile(load_path):
            raise  # FileNotFoundError already names the file
        failure = error
    _, readable = load_network_checkpoint(load_path)  # CheckpointReadError (a ValueError) names the file
    if readable != load_path:
        return load_network(self, net, readable, strict, param_key)
    message = _explain_load_failure(self.get_bare_model(net), load_path, param_key)
    if message is None:
        raise failure
    raise ValueError(message) from None


def apply():
    from basicsr.models.base_model import BaseModel

    replace(BaseModel, 'load_network', load_network)
