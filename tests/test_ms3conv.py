import contextlib
import pytest
import torch
from torch.nn import functional as F

from msconv_plugin.archs.ms3conv import (DEFAULT_CROSS_SCALE_INIT, MS3Conv, MS3Fuse, MS3Split, add_upsampled_,
                                         cross_scale_sources, ms3conv_num_params, num_cross_scale_kernels)


def _multi_scale(n, c, h=16, w=24, batch=2):
    return [torch.randn(batch, c, h >> i, w >> i) for i in range(n)]


@pytest.mark.parametrize('interaction', ['adjacent', 'full'])
@pytest.mark.parametrize('n_scales', [1, 2, 3, 4])
@pytest.mark.parametrize('c_in,c_out', [(8, 8), (6, 10)])
def test_s2_parameter_count_is_closed_form(n_scales, interaction, c_in, c_out):
    layer = MS3Conv(c_in, c_out, n_scales, interaction)
    cross = 2 * n_scales - 2 if interaction == 'adjacent' else n_scales * (n_scales - 1)
    assert num_cross_scale_kernels(n_scales, interaction) == cross
    assert len(layer.cross_scale) == cross
    expected = 9 * c_in * c_out * (1 + cross) + c_out
    assert sum(p.numel() for p in layer.parameters()) == expected == ms3conv_num_params(
        c_in, c_out, n_scales, interaction)


def test_adjacent_and_full_sources():
    assert [cross_scale_sources(i, 4, 'adjacent') for i in range(4)] == [[1], [0, 2], [1, 3], [2]]
    assert [cross_scale_sources(i, 3, 'full') for i in range(3)] == [[1, 2], [0, 2], [0, 1]]


@pytest.mark.parametrize('interaction', ['adjacent', 'full'])
@pytest.mark.parametrize('n_scales', [2, 3])
def test_same_scale_kernel_is_one_tensor_used_at_every_scale(n_scales, interaction):
    layer = MS3Conv(4, 4, n_scales, interaction)
    layer.merged = False  # one module call per kernel, so hooks can see them
    seen_sizes = []
    layer.same_scale.register_forward_hook(lambda mod, inp, out: seen_sizes.append(tuple(inp[0].shape[-2:])))
    layer(_multi_scale(n_scales, 4))
    assert seen_sizes == [(16 >> i, 24 >> i) for i in range(n_scales)]
    # exactly one weight and one bias tensor for the same-scale mapping; all others are cross-scale kernels
    same = [name for name, _ in layer.named_parameters() if name.startswith('same_scale')]
    assert same == ['same_scale.weight', 'same_scale.bias']
    # the shared weight's gradient collects every branch's contribution (on both paths)
    per_branch = torch.zeros_like(layer.same_scale.weight)
    xs = _multi_scale(n_scales, 4)
    for x in xs:
        layer.zero_grad()
        F.conv2d(x, layer.same_scale.weight, layer.same_scale.bias, padding=1).sum().backward()
        per_branch += layer.same_scale.weight.grad
    for merged in (False, True):
        layer.merged = merged
        layer.zero_grad()
        sum(o.sum() for o in layer(xs)).backward()
        torch.testing.assert_close(layer.same_scale.weight.grad, per_branch)


def test_s2_matches_the_written_out_formula():
    """Finer sources are downsampled before their kernel, coarser ones upsampled after it."""
    torch.manual_seed(0)
    layer = MS3Conv(3, 5, 3, 'full')
    x1, x2, x3 = _multi_scale(3, 3)
    outs = layer([x1, x2, x3])

    def k(name, x):
        return F.conv2d(x, layer.cross_scale[name].weight, padding=1)

    def same(x):
        return F.conv2d(x, layer.same_scale.weight, layer.same_scale.bias, padding=1)

    def up(x, f):
        return F.interpolate(x, scale_factor=f, mode='nearest')

    expected = [
        same(x1) + up(k('2to1', x2), 2) + up(k('3to1', x3), 4),
        same(x2) + k('1to2', F.avg_pool2d(x1, 2)) + up(k('3to2', x3), 2),
        same(x3) + k('1to3', F.avg_pool2d(x1, 4)) + k('2to3', F.avg_pool2d(x2, 2)),
    ]
    for out, exp in zip(outs, expected):
        torch.testing.assert_close(out, exp)


@pytest.mark.parametrize('size', [(17, 23), (3, 5), (1, 1), (16, 16)])
@pytest.mark.parametrize('n_scales', [1, 2, 3])
def test_split_and_fuse_sizes(n_scales, size):
    x = torch.randn(1, 7, *size)
    branches = MS3Split(n_scales)(x)
    assert len(branches) == n_scales
    multiple = 2**(n_scales - 1)
    padded = [-(-s // multiple) * multiple for s in size]
    for i, b in enumerate(branches):
        assert b.shape == (1, 7 // n_scales, padded[0] >> i, padded[1] >> i)
    assert MS3Fuse(7 // n_scales, 9, n_scales)(branches, size).shape == (1, 9, *size)


def test_split_uses_the_leading_channels_and_averages():
    x = torch.arange(2 * 4 * 4 * 5, dtype=torch.float32).view(2, 4, 4, 5)  # 5 channels → 2 branches of 2
    x = x.permute(0, 3, 1, 2)
    b1, b2 = MS3Split(2)(x)
    torch.testing.assert_close(b1, x[:, :2])
    torch.testing.assert_close(b2, F.avg_pool2d(x[:, 2:4], 2))


def test_fuse_sums_upsampled_branches():
    torch.manual_seed(0)
    fuse = MS3Fuse(2, 3, 3, upsample='bilinear')
    xs = _multi_scale(3, 2)
    up = lambda x: F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)  # noqa: E731
    expected = fuse.convs[0](xs[0]) + up(fuse.convs[1](xs[1])) + up(up(fuse.convs[2](xs[2])))
    torch.testing.assert_close(fuse(xs, (16, 24)), expected)
    assert [c.bias is not None for c in fuse.convs] == [True, False, False]


@pytest.mark.parametrize('kwargs,match', [
    (dict(n_scales=0), 'n_scales'),
    (dict(n_scales=2.0), 'n_scales'),
    (dict(interaction='ring'), 'interaction'),
    (dict(downsample='bicubic'), 'downsample'),
    (dict(upsample='area'), 'upsample'),
])
def test_bad_layer_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MS3Conv(4, 4, **kwargs)


@pytest.mark.parametrize('down,up', [('avg', 'nearest'), ('max', 'bilinear')])
@pytest.mark.parametrize('interaction', ['adjacent', 'full'])
@pytest.mark.parametrize('n_scales', [2, 3, 4])
@pytest.mark.parametrize('channels_last', [False, True])
def test_merged_path_equals_reference(n_scales, interaction, down, up, channels_last):
    """The fast path (wider merged convolutions) computes the reference formulation: outputs and gradients."""
    torch.manual_seed(0)
    layer = MS3Conv(5, 7, n_scales, interaction, downsample=down, upsample=up)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 5 * n_scales, 19, 13).to(memory_format=fmt)  # odd size: the split pads
    xs_fast = [b.detach().requires_grad_() for b in MS3Split(n_scales, down)(x)]
    xs_ref = [b.detach().requires_grad_() for b in xs_fast]
    fast, ref = layer.forward_merged(xs_fast), layer.forward_reference(xs_ref)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    grads = []
    for outs, inputs in ((fast, xs_fast), (ref, xs_ref)):
        layer.zero_grad()
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
        grads.append([p.grad.clone() for p in layer.parameters()] + [x.grad for x in inputs])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_grouped_layer_takes_the_reference_path():
    layer = MS3Conv(8, 8, 2, groups=4)
    xs = _multi_scale(2, 8)
    for a, b in zip(layer(xs), layer.forward_reference(xs)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


SMALL_NETWORKS = {
    'MS3EDSR': dict(num_in_ch=3, num_out_ch=3, num_feat=12, num_block=2, upscale=2),
    'MS3SRResNet': dict(num_in_ch=3, num_out_ch=3, num_feat=12, num_block=2, upscale=2),
    'MS3RRDBNet': dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=12, num_block=1, num_grow_ch=6),
    'MS3CARN': dict(num_in_ch=3, num_out_ch=3, num_feat=24, upscale=2),
}


def _build(net_type, seed=0, **kwargs):
    from basicsr.archs import build_network
    torch.manual_seed(seed)
    return build_network(dict(type=net_type, **SMALL_NETWORKS[net_type], **kwargs))


@pytest.mark.parametrize('n_scales', [2, 3])
@pytest.mark.parametrize('net_type', list(SMALL_NETWORKS))
def test_cross_scale_init_scales_only_the_cross_scale_kernels(net_type, n_scales):
    reference = _build(net_type, n_scales=n_scales, cross_scale_init=1).state_dict()
    for factor in (0., 0.5):
        scaled = _build(net_type, n_scales=n_scales, cross_scale_init=factor).state_dict()
        assert scaled.keys() == reference.keys()
        cross = [k for k in reference if '.cross_scale.' in k]
        assert cross and all(k.endswith('.weight') for k in cross)
        for key, value in reference.items():
            # the same random draws (same seed), then the cross-scale weights multiplied: exactly, nothing else
            assert torch.equal(scaled[key], value * factor if key in cross else value), key
    # The default is DEFAULT_CROSS_SCALE_INIT (0): the cross-scale kernels start at zero, nothing else changes.
    assert DEFAULT_CROSS_SCALE_INIT == 0
    default = _build(net_type, n_scales=n_scales).state_dict()
    assert all(torch.equal(default[k], reference[k] * 0 if '.cross_scale.' in k else reference[k]) for k in reference)
    # Started at zero, the cross-scale kernels still learn: every one of them gets a gradient.
    net = _build(net_type, n_scales=n_scales, cross_scale_init=0)
    net(torch.rand(2, 3, 24, 24)).mean().backward()
    for name, param in net.named_parameters():
        if '.cross_scale.' in name:
            assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize('value', [-0.1, float('inf'), float('nan'), 'zero', True, None])
@pytest.mark.parametrize('net_type', list(SMALL_NETWORKS))
def test_bad_cross_scale_init_is_refused(net_type, value):
    with pytest.raises(ValueError, match='cross_scale_init must be a finite number >= 0'):
        _build(net_type, cross_scale_init=value)


def _saved_storages(fn):
    """Data pointers of the storages autograd keeps for backward while ``fn`` runs."""
    saved = set()

    def pack(tensor):
        saved.add(tensor.untyped_storage().data_ptr())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()
    return saved, out


@pytest.mark.parametrize('interaction', ['adjacent', 'full'])
@pytest.mark.parametrize('n_scales', [2, 3])
def test_backward_keeps_no_pooled_copy_or_stacked_kernel(n_scales, interaction):
    """With ``recompute`` (the default) an S2 layer keeps only its inputs and parameters for backward; without it,
    also the pooled inputs of the cross-scale kernels and the stacked kernels."""
    torch.manual_seed(0)
    layer = MS3Conv(4, 4, n_scales, interaction)
    xs = [x.requires_grad_() for x in _multi_scale(n_scales, 4)]
    allowed = {t.untyped_storage().data_ptr() for t in xs + list(layer.parameters())}
    saved, _ = _saved_storages(lambda: layer(xs))
    assert saved <= allowed
    layer.recompute = False
    saved, _ = _saved_storages(lambda: layer(xs))
    assert saved - allowed


@pytest.mark.parametrize('n_scales', [2, 3])
def test_split_keeps_only_its_branches_for_backward(n_scales):
    """Backward of the split does not hold the full-resolution input; its gradient is average pooling's."""
    x = torch.randn(2, 4 * n_scales, 12, 8, requires_grad=True)
    saved, branches = _saved_storages(lambda: MS3Split(n_scales)(x))
    assert x.untyped_storage().data_ptr() not in saved
    weights = [torch.randn_like(b) for b in branches]
    grad, = torch.autograd.grad(sum((b * w).sum() for b, w in zip(branches, weights)), x)
    expected = [F.avg_pool2d(x[:, 4 * i:4 * (i + 1)], 2**i) if i else x[:, :4] for i in range(n_scales)]
    for b, e in zip(branches, expected):
        torch.testing.assert_close(b, e, rtol=0, atol=0)
    expected_grad, = torch.autograd.grad(sum((e * w).sum() for e, w in zip(expected, weights)), x)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=0)


def _gradients(net, x, recompute, context=None):
    """The parameters' gradients of ``mean |net(x)|`` with every S2 layer's ``recompute`` set."""
    for layer in net.modules():
        if isinstance(layer, MS3Conv):
            layer.recompute = recompute
    net.zero_grad()
    with context or contextlib.nullcontext():
        out = net(x)
    out.float().abs().mean().backward()
    return {name: p.grad.clone() for name, p in net.named_parameters() if p.requires_grad}


@pytest.mark.parametrize('n_scales', [2, 3])
@pytest.mark.parametrize('net_type', list(SMALL_NETWORKS))
def test_recomputing_backward_gives_the_same_gradients(net_type, n_scales):
    """Rebuilding the pooled inputs and stacked kernels in backward changes no gradient (odd feature sizes: RRDBNet
    ×2 pixel-unshuffles its input by 2 first)."""
    net = _build(net_type, n_scales=n_scales)
    x = torch.rand(2, 3, *((22, 14) if net_type == 'MS3RRDBNet' else (19, 13)))
    grads = [_gradients(net, x, recompute) for recompute in (True, False)]
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=0, atol=1e-6, msg=name)


def test_recomputing_backward_under_autocast():
    """Under autocast (bfloat16 on the CPU) backward rebuilds the convolution's tensors in the forward's precision."""
    net = _build('MS3EDSR', n_scales=2)
    x = torch.rand(2, 3, 19, 13)
    grads = [_gradients(net, x, recompute, torch.autocast('cpu', dtype=torch.bfloat16)) for recompute in (True, False)]
    for name, grad in grads[0].items():
        assert grad.dtype == torch.float32
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize('times', [1, 2])
@pytest.mark.parametrize('x_needs_grad', [False, True])
def test_add_upsampled_in_place_has_the_gradients_of_upsample_then_add(times, x_needs_grad):
    """Nearest into a channels_last tensor adds into blocks in place; its backward gives ``y`` the block sums of the
    gradient and passes ``x``'s through, as the out-of-place composition does."""
    torch.manual_seed(0)
    y = torch.randn(2, 3, 5, 7, requires_grad=True)
    x0 = torch.randn(2, 3, 5 * 2**times, 7 * 2**times, requires_grad=x_needs_grad)
    weight = torch.randn_like(x0)
    grads = []
    for in_place in (True, False):
        x = (x0 * 1).contiguous(memory_format=torch.channels_last)  # a non-leaf that may be changed in place
        out = add_upsampled_(x, y, times) if in_place else x + F.interpolate(y, scale_factor=2**times)
        if in_place:
            assert out is x and type(out.grad_fn).__name__ != 'CopySlices'
        inputs = [y, x0] if x_needs_grad else [y]
        grads.append(torch.autograd.grad((out * weight).sum(), inputs))
        torch.testing.assert_close(out, x0 + F.interpolate(y, scale_factor=2**times), rtol=0, atol=0)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
