"""Parameters and multiply-adds of the plain networks and their MS³ conversions (mmengine's FLOP counter).

mmengine counts the multiply-accumulates of convolutions and linear layers ("flops" in its API, one per
multiply-add). It leaves out pooling, interpolation, pixel (un)shuffle, element-wise additions/multiplications and
activations; each table lists the operators it saw and did not count. ``count`` is the one counter of the project:
``scripts/model_complexity.py`` (docs/complexity.md), the quality study, the model zoo's cards and the demo use it.
"""
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from .archs.ms3conv import MS3Conv, ms3conv_num_params
from .extras import require

# name: plain type, MS³ type, constructor arguments, name of the scale argument, conversion scopes offered
NETWORKS = {
    'EDSR-M': ('EDSR', 'MS3EDSR', dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16), 'upscale',
               ('trunk', 'whole')),
    'EDSR-L': ('EDSR', 'MS3EDSR', dict(num_in_ch=3, num_out_ch=3, num_feat=256, num_block=32, res_scale=0.1),
               'upscale', ('trunk', 'whole')),
    'MSRResNet': ('MSRResNet', 'MS3SRResNet', dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16), 'upscale',
                  ('trunk', 'whole')),
    'RRDBNet': ('RRDBNet', 'MS3RRDBNet', dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32),
                'scale', ('trunk', 'whole')),
    'CARN': ('CARN', 'MS3CARN', dict(num_in_ch=3, num_out_ch=3, num_feat=64, group=1), 'upscale', (None, )),
    'CARN-M': ('CARN', 'MS3CARN', dict(num_in_ch=3, num_out_ch=3, num_feat=64, group=4), 'upscale', (None, )),
    # converted automatically (MS3Auto, default split and fuse); RIDNet denoises (no scale argument: x1 only)
    'RCAN': ('RCAN', 'MS3Auto', dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_group=10, num_block=20), 'upscale',
             (None, )),
    'SRVGGNetCompact': ('SRVGGNetCompact_basicsr', 'MS3Auto', dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16),
                        'upscale', (None, )),
    'RIDNet': ('RIDNet', 'MS3Auto', dict(in_channels=3, mid_channels=64, out_channels=3, num_block=4), None, (None, )),
}
# plain network type -> its MS³ conversion (which keeps every argument of the plain one)
MS3_TYPES = {plain_type: ms3_type for plain_type, ms3_type, *_ in NETWORKS.values()}


def s2_parameter_check(model):
    """Parameters held by the model's S2 layers, counted and from the closed form."""
    counted = closed_form = 0
    for layer in model.modules():
        if isinstance(layer, MS3Conv):
            conv = layer.same_scale
            counted += sum(p.numel() for p in layer.parameters())
            closed_form += ms3conv_num_params(conv.in_channels, conv.out_channels, layer.n_scales, layer.interaction,
                                              conv.kernel_size[0], conv.bias is not None, conv.groups,
                                              layer.downsample, layer.upsample)
    return counted, closed_form


# mmengine counts one "flop" per output element of an interpolation; these are not multiply-adds, so they are
# left out like pooling, and listed as seen-but-not-counted.
NOT_MULTIPLY_ADDS = ('aten::upsample_nearest2d', 'aten::upsample_bilinear2d', 'aten::adaptive_avg_pool2d')


def count(model, input_shape):
    """Multiply-adds of ``model`` on one input of ``input_shape`` (C, H, W), and the operators seen but not counted.

    Returns:
        tuple: (multiply-adds (int), sorted list of the operators left out).
    """
    analysis = require('mmengine.analysis', 'study')
    seen = set()

    def not_counted(name):
        return lambda inputs, outputs: seen.add(name) or 0

    with torch.no_grad():
        analyzer = analysis.FlopAnalyzer(model, torch.rand(1, *input_shape))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        for name in NOT_MULTIPLY_ADDS:
            analyzer.set_op_handle(name, not_counted(name))
        macs = analyzer.total()
        uncounted = sorted(seen | set(analyzer.unsupported_ops()))
    return macs, uncounted


def measure(net_type, kwargs, size):
    """Parameters and multiply-adds of the network ``net_type(**kwargs)`` on a ``size``×``size`` RGB input."""
    model = ARCH_REGISTRY.get(net_type)(**kwargs).eval()
    macs, uncounted = count(model, (3, size, size))
    s2_counted, s2_closed_form = s2_parameter_check(model)
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        macs=macs,
        uncounted_ops=uncounted,
        s2_params=s2_counted,
        s2_params_closed_form=s2_closed_form)


# The width arguments of each network narrowed for the plain network of equal multiply-adds (the others, scaled
# by the same factor); networks not listed are narrowed by num_feat.
WIDTH_KEYS = {'RRDBNet': ('num_feat', 'num_grow_ch'), 'RIDNet': ('mid_channels', )}


def plain_kwargs(name, scale):
    """The plain network of ``NETWORKS[name]`` at ``scale``: ``(type, constructor arguments)``."""
    plain_type, _, base_kwargs, scale_key, _ = NETWORKS[name]
    return plain_type, ({**base_kwargs, scale_key: scale} if scale_key else dict(base_kwargs))


def ms3_kwargs(name, scale, n_scales, interaction='adjacent', scope=None, upsample=None):
    """Its MS³ conversion: ``(type, constructor arguments)`` (``scope`` None: the network's default; ``upsample``
    None: the default up-sampling between scales, else ``'nearest'``, ``'bilinear'`` or ``'learned'``)."""
    plain_type, kwargs = plain_kwargs(name, scale)
    ms3_type = NETWORKS[name][1]
    extra = {} if upsample is None else dict(upsample=upsample)
    if ms3_type == 'MS3Auto':
        return ms3_type, dict(base=dict(kwargs, type=plain_type), n_scales=n_scales, interaction=interaction, **extra)
    kwargs = dict(kwargs, n_scales=n_scales, interaction=interaction, **extra)
    if scope is not None:
        kwargs['scope'] = scope
    return ms3_type, kwargs


def width_keys(net_type):
    """The width arguments of the network type ``net_type``, a plain network or its MS³ conversion (``WIDTH_KEYS``
    of the plain type): the first is the width, the others scale with it."""
    plain_type = next((plain for plain, ms3 in MS3_TYPES.items() if ms3 == net_type and ms3 != 'MS3Auto'), net_type)
    return WIDTH_KEYS.get(plain_type, ('num_feat', ))


def at_width(kwargs, keys, width):
    """Constructor arguments ``kwargs`` with ``keys[0]`` set to ``width`` and the other ``keys`` scaled by the same
    factor (rounded, at least 1)."""
    factor = width / kwargs[keys[0]]
    return dict(kwargs, **{key: width if key == keys[0] else max(1, round(kwargs[key] * factor)) for key in keys})


def narrowed(name, kwargs, width):
    """The plain constructor arguments ``kwargs`` of ``name`` with its width set to ``width`` (``WIDTH_KEYS``)."""
    return at_width(kwargs, width_keys(NETWORKS[name][0]), width)


def equal_macs_width(name, kwargs, target_macs, size):
    """The width of the plain network ``name`` (``kwargs``) whose multiply-adds on a ``size``×``size`` input are
    closest to ``target_macs``: a search over widths that keep its arguments valid (multiples of ``group``)."""
    plain_type = NETWORKS[name][0]
    step = kwargs.get('group', 1)
    widths = list(range(step * max(1, 8 // step), kwargs[WIDTH_KEYS.get(plain_type, ('num_feat', ))[0]] + 1, step))

    def macs(width):
        model = ARCH_REGISTRY.get(plain_type)(**narrowed(name, kwargs, width)).eval()
        return count(model, (3, size, size))[0]

    low, high = 0, len(widths) - 1  # multiply-adds grow with the width: the first width at or above the target
    while low < high:
        middle = (low + high) // 2
        if macs(widths[middle]) < target_macs:
            low = middle + 1
        else:
            high = middle
    candidates = widths[max(0, low - 1):low + 1]
    return min(candidates, key=lambda width: abs(macs(width) - target_macs))


def rows_for(name, scale, size, n_scales_list, interactions):
    plain_type, kwargs = plain_kwargs(name, scale)
    ms3_type, scopes = NETWORKS[name][1], NETWORKS[name][4]
    plain = measure(plain_type, kwargs, size)
    rows = [dict(network=name, type=plain_type, scale=scale, config='plain', **plain)]
    for n_scales in n_scales_list:
        for interaction in interactions:
            for scope in scopes:
                _, variant_kwargs = ms3_kwargs(name, scale, n_scales, interaction, scope)
                config = f'n={n_scales} {interaction}' + (f' {scope}' if scope is not None else '')
                row = dict(network=name, type=ms3_type, scale=scale, config=config, kwargs=variant_kwargs,
                           **measure(ms3_type, variant_kwargs, size))
                row['params_ratio'] = row['params'] / plain['params']
                row['macs_ratio'] = row['macs'] / plain['macs']
                rows.append(row)
    return rows


def markdown(rows, size):
    lines = []
    for (name, scale) in dict.fromkeys((r['network'], r['scale']) for r in rows):
        group = [r for r in rows if r['network'] == name and r['scale'] == scale]
        lines += [
            f'### {name} ×{scale} ({size}×{size} LR input)', '',
            '| config | parameters | of plain | multiply-adds | of plain |', '|---|---|---|---|---|'
        ]
        for r in group:
            ratios = ('100%', '100%') if r['config'] == 'plain' else (f"{r['params_ratio']:.1%}",
                                                                      f"{r['macs_ratio']:.1%}")
            lines.append(f"| {r['type']} {r['config']} | {r['params'] / 1e6:.3f} M | {ratios[0]} | "
                         f"{r['macs'] / 1e9:.2f} G | {ratios[1]} |")
        uncounted = sorted(set(op for r in group for op in r['uncounted_ops']))
        lines += ['', 'Not counted: ' + ', '.join(f'`{op}`' for op in uncounted), '']
    return '\n'.join(lines)
