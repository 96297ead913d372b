import itertools

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from msconv_plugin.archs.carn_arch import CARN
from msconv_plugin.archs.ms3carn_arch import MS3CARN, MS3EResidualBlock, carn_to_ms3carn, ms3carn_branch_feat
from msconv_plugin.archs.ms3conv import MS3Conv


def test_registered():
    assert ARCH_REGISTRY.get('MS3CARN') is MS3CARN


@pytest.mark.parametrize('upscale,n_scales,interaction,group',
                         list(itertools.product([2, 3, 4], [1, 2, 3], ['adjacent', 'full'], [1, 4])))
def test_shapes(upscale, n_scales, interaction, group):
    net = MS3CARN(num_feat=24, upscale=upscale, group=group, n_scales=n_scales, interaction=interaction)
    for h, w in [(17, 23), (3, 5)]:
        assert net(torch.rand(1, 3, h, w)).shape == (1, 3, h * upscale, w * upscale)


@pytest.mark.parametrize('group,upscale', list(itertools.product([1, 4], [2, 3, 4])))
def test_n_scales_1_is_carn(group, upscale):
    torch.manual_seed(0)
    carn = CARN(num_feat=16, upscale=upscale, group=group).eval()
    ms3 = MS3CARN(num_feat=16, upscale=upscale, group=group, n_scales=1).eval()
    ms3.load_state_dict(carn_to_ms3carn(carn.state_dict()), strict=True)
    x = torch.rand(2, 3, 17, 23)
    with torch.no_grad():
        torch.testing.assert_close(ms3(x), carn(x), rtol=0, atol=1e-6)
    assert sum(p.numel() for p in ms3.parameters()) == sum(p.numel() for p in carn.parameters())


@pytest.mark.parametrize('num_feat,n_scales,group,expected', [(64, 1, 4, 64), (64, 2, 4, 32), (64, 3, 1, 21),
                                                              (64, 3, 4, 20), (24, 3, 4, 8), (16, 3, 4, 4)])
def test_branch_width_is_the_largest_multiple_of_group(num_feat, n_scales, group, expected):
    assert ms3carn_branch_feat(num_feat, n_scales, group) == expected
    net = MS3CARN(num_feat=num_feat, group=group, n_scales=n_scales)
    assert net.entry.out_channels == n_scales * expected
    assert net.fuse.convs[0].out_channels == num_feat
    assert net.b1.c3.same_scale.in_channels == 4 * expected  # branch-wise concatenation of 4 branch outputs


@pytest.mark.parametrize('group,n_scales,interaction', [(1, 2, 'adjacent'), (4, 2, 'adjacent'), (1, 3, 'full'),
                                                        (4, 3, 'full')])
def test_every_parameter_gets_a_gradient_and_weights_are_shared(group, n_scales, interaction):
    torch.manual_seed(0)
    net = MS3CARN(num_feat=24, upscale=2, group=group, n_scales=n_scales, interaction=interaction)
    calls = []
    for m in net.modules():
        if isinstance(m, MS3Conv):
            m.merged = False  # one module call per kernel, so hooks can see them
            m.same_scale.register_forward_hook(lambda mod, inp, out: calls.append(mod))
    net(torch.rand(2, 3, 9, 11)).abs().mean().backward()

    s2_layers = [m for m in net.modules() if isinstance(m, MS3Conv)]
    # Per cascading block: 3 cascading convolutions + (CARN) 3 residual blocks × 2 or (CARN-M) 1 E-block × 3.
    assert len(s2_layers) == 3 * (3 + (6 if group == 1 else 3)) + 2
    e_block_layers = {id(m) for block in net.modules() if isinstance(block, MS3EResidualBlock) for m in block.modules()}
    for layer in s2_layers:  # each layer's single same-scale module ran once per branch, per use (CARN-M: 3 uses)
        uses = 3 if id(layer) in e_block_layers else 1
        assert sum(c is layer.same_scale for c in calls) == uses * n_scales

    for name, p in net.named_parameters():
        if name.startswith(('sub_mean.', 'add_mean.')):
            assert not p.requires_grad, name
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('kwargs,match', [
    (dict(n_scales=0), 'n_scales'),
    (dict(interaction='dense'), "interaction must be one of \\('adjacent', 'full'\\)"),
    (dict(downsample='bicubic'), 'downsample'),
    (dict(upsample='bicubic'), 'upsample'),
    (dict(num_feat=2, n_scales=3), 'num_feat'),
    (dict(group=0), 'group'),
    (dict(num_feat=30, group=4), r'num_feat \(30\) must be a multiple of group \(4\)'),
    (dict(num_feat=16, n_scales=3, group=8), r'num_feat // n_scales .* must be >= group'),
    (dict(upscale=5), 'upscale'),
    (dict(num_in_ch=1), 'num_in_ch'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MS3CARN(**{'num_feat': 24, **kwargs})
