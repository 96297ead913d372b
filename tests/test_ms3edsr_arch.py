import itertools
import subprocess
import sys

import pytest
import torch
from basicsr.archs.edsr_arch import EDSR
from basicsr.utils.registry import ARCH_REGISTRY

from msconv_plugin.archs.ms3conv import ms3conv_num_params
from msconv_plugin.archs.ms3edsr_arch import MS3EDSR, edsr_to_ms3edsr
from tests.arch_checks import assert_equivalent, assert_shared_weights_and_gradients

TINY = dict(num_in_ch=3, num_out_ch=3, num_feat=12, num_block=2)


def test_import_registers_and_basicsr_still_imports():
    code = ('import msconv_plugin, basicsr\n'
            'from basicsr.utils.registry import ARCH_REGISTRY\n'
            'assert ARCH_REGISTRY.get("MS3EDSR").__name__ == "MS3EDSR"\n')
    subprocess.run([sys.executable, '-c', code], check=True)
    assert ARCH_REGISTRY.get('MS3EDSR') is MS3EDSR


@pytest.mark.parametrize('upscale,n_scales,interaction,scope',
                         list(itertools.product([1, 2, 3, 4], [1, 2, 3], ['adjacent', 'full'], ['trunk', 'whole'])))
def test_shapes(upscale, n_scales, interaction, scope):
    net = MS3EDSR(**TINY, upscale=upscale, n_scales=n_scales, interaction=interaction, scope=scope)
    for h, w in [(17, 23), (3, 5)]:
        assert net(torch.rand(2, 3, h, w)).shape == (2, 3, h * upscale, w * upscale)


@pytest.mark.parametrize('upscale,scope', list(itertools.product([1, 2, 3, 4], ['trunk', 'whole'])))
def test_n_scales_1_is_edsr(upscale, scope):
    torch.manual_seed(0)
    edsr = EDSR(3, 3, 16, 3, upscale, res_scale=0.1)
    ms3 = MS3EDSR(3, 3, 16, 3, upscale, res_scale=0.1, n_scales=1, scope=scope)
    ms3.load_state_dict(edsr_to_ms3edsr(edsr.state_dict(), scope), strict=True)
    assert_equivalent(edsr, ms3, torch.rand(2, 3, 17, 23))


@pytest.mark.parametrize('n_scales,interaction,scope', [(2, 'adjacent', 'trunk'), (3, 'adjacent', 'trunk'),
                                                        (3, 'full', 'trunk'), (3, 'adjacent', 'whole')])
def test_every_parameter_gets_a_gradient_and_weights_are_shared(n_scales, interaction, scope):
    torch.manual_seed(0)
    net = MS3EDSR(**TINY, upscale=2, n_scales=n_scales, interaction=interaction, scope=scope)
    assert_shared_weights_and_gradients(net, torch.rand(2, 3, 9, 11), n_scales)


@pytest.mark.parametrize('n_scales,interaction', [(2, 'adjacent'), (3, 'adjacent'), (3, 'full'), (4, 'full')])
def test_parameter_count(n_scales, interaction):
    """Both scopes against closed forms; the default scope is 'trunk'."""
    num_feat, num_block = 64, 16
    w = num_feat // n_scales
    body = 2 * num_block * ms3conv_num_params(w, w, n_scales, interaction)
    # 'trunk': EDSR's conv_first, upsampler (64 -> 4 * 64) and conv_last, and a fuse from the branches to 64 channels
    fuse = n_scales * 9 * w * num_feat + num_feat
    outside = 3 * 9 * num_feat + num_feat + (9 * num_feat * 4 * num_feat + 4 * num_feat) + 9 * num_feat * 3 + 3
    for net in (MS3EDSR(3, 3, num_feat, num_block, 2, n_scales=n_scales, interaction=interaction, scope='trunk'),
                MS3EDSR(3, 3, num_feat, num_block, 2, n_scales=n_scales, interaction=interaction)):
        assert sum(p.numel() for p in net.parameters()) == body + fuse + outside
    # 'whole': conv_first to the branches, conv_after_body and the upsampler as S2 layers, a fuse to the 3 outputs
    net = MS3EDSR(3, 3, num_feat, num_block, 2, n_scales=n_scales, interaction=interaction, scope='whole')
    first = 3 * 9 * n_scales * w + n_scales * w
    after = ms3conv_num_params(w, w, n_scales, interaction) + ms3conv_num_params(w, 4 * w, n_scales, interaction)
    fuse = n_scales * 9 * w * 3 + 3
    assert sum(p.numel() for p in net.parameters()) == body + first + after + fuse


@pytest.mark.parametrize('scope', ['trunk', 'whole'])
@pytest.mark.parametrize('split_after', [1, 3])
def test_n_scales_1_is_edsr_wherever_the_split_is(scope, split_after):
    torch.manual_seed(0)
    edsr = EDSR(3, 3, 16, 3, 2, res_scale=0.1)
    ms3 = MS3EDSR(3, 3, 16, 3, 2, res_scale=0.1, n_scales=1, scope=scope, split_after=split_after)
    ms3.load_state_dict(edsr_to_ms3edsr(edsr.state_dict(), scope, split_after), strict=True)
    assert_equivalent(edsr, ms3, torch.rand(2, 3, 17, 23))


@pytest.mark.parametrize('scope', ['trunk', 'whole'])
@pytest.mark.parametrize('n_scales,split_after', [(2, 1), (2, 2), (3, 1)])
def test_split_after_blocks(scope, n_scales, split_after):
    """The first ``split_after`` blocks are EDSR's at full resolution (full width: 'trunk' keeps num_feat, 'whole'
    the branches' total), the others S2 blocks; shapes, parameter count and gradients."""
    torch.manual_seed(0)
    num_feat, num_block = 13, 3
    w = num_feat // n_scales
    net = MS3EDSR(3, 3, num_feat, num_block, 2, n_scales=n_scales, scope=scope, split_after=split_after)
    full = num_feat if scope == 'trunk' else n_scales * w
    base = MS3EDSR(3, 3, num_feat, num_block, 2, n_scales=n_scales, scope=scope)
    plain_block, ms3_block = 2 * (9 * full * full + full), 2 * ms3conv_num_params(w, w, n_scales, 'adjacent')
    assert sum(p.numel() for p in net.parameters()) == \
        sum(p.numel() for p in base.parameters()) + split_after * (plain_block - ms3_block)
    assert [type(block).__name__ for block in net.body] == \
        ['ResidualBlockNoBN'] * split_after + ['MS3ResidualBlockNoBN'] * (num_block - split_after)
    for h, w_ in [(17, 23), (3, 5)]:
        assert net(torch.rand(2, 3, h, w_)).shape == (2, 3, 2 * h, 2 * w_)
    assert_shared_weights_and_gradients(net, torch.rand(2, 3, 9, 11), n_scales)


@pytest.mark.parametrize('kwargs,match', [
    (dict(split_after=-1), 'split_after'),
    (dict(split_after=3), 'split_after must be an integer from 0 to num_block \\(2\\)'),
    (dict(split_after=1.5), 'split_after'),
    (dict(n_scales=0), 'n_scales'),
    (dict(n_scales=-1), 'n_scales'),
    (dict(interaction='dense'), "interaction must be one of \\('adjacent', 'full'\\)"),
    (dict(num_feat=2, n_scales=3), 'num_feat'),
    (dict(scope='upsampler'), 'scope'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MS3EDSR(**{**TINY, **kwargs})
