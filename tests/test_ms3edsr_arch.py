import itertools
import subprocess
import sys

import pytest
import torch
from basicsr.archs.edsr_arch import EDSR
from basicsr.utils.registry import ARCH_REGISTRY

from msconv_plugin.archs.ms3conv import MS3Conv, ms3conv_num_params
from msconv_plugin.archs.ms3edsr_arch import MS3EDSR, edsr_to_ms3edsr

TINY = dict(num_in_ch=3, num_out_ch=3, num_feat=12, num_block=2)


def test_import_registers_and_basicsr_still_imports():
    code = ('import msconv_plugin, basicsr\n'
            'from basicsr.utils.registry import ARCH_REGISTRY\n'
            'assert ARCH_REGISTRY.get("MS3EDSR").__name__ == "MS3EDSR"\n')
    subprocess.run([sys.executable, '-c', code], check=True)
    assert ARCH_REGISTRY.get('MS3EDSR') is MS3EDSR


@pytest.mark.parametrize('upscale,n_scales,interaction',
                         list(itertools.product([1, 2, 3, 4], [1, 2, 3], ["adjacent", "full"])))
def test_shapes(upscale, n_scales, interaction):
    net = MS3EDSR(**TINY, upscale=upscale, n_scales=n_scales, interaction=interaction)
    for h, w in [(17, 23), (3, 5)]:
        assert net(torch.rand(2, 3, h, w)).shape == (2, 3, h * upscale, w * upscale)


@pytest.mark.parametrize('upscale', [1, 2, 3, 4])
def test_n_scales_1_is_edsr(upscale):
    torch.manual_seed(0)
    edsr = EDSR(3, 3, 16, 3, upscale, res_scale=0.1).eval()
    ms3 = MS3EDSR(3, 3, 16, 3, upscale, res_scale=0.1, n_scales=1).eval()
    ms3.load_state_dict(edsr_to_ms3edsr(edsr.state_dict()), strict=True)
    x = torch.rand(2, 3, 17, 23)
    with torch.no_grad():
        torch.testing.assert_close(ms3(x), edsr(x), rtol=0, atol=1e-6)
    assert sum(p.numel() for p in ms3.parameters()) == sum(p.numel() for p in edsr.parameters())


@pytest.mark.parametrize('n_scales,interaction', [(2, 'adjacent'), (3, 'adjacent'), (3, 'full')])
def test_every_parameter_gets_a_gradient_and_weights_are_shared(n_scales, interaction):
    torch.manual_seed(0)
    net = MS3EDSR(**TINY, upscale=2, n_scales=n_scales, interaction=interaction)
    calls = []
    for m in net.modules():
        if isinstance(m, MS3Conv):
            m.same_scale.register_forward_hook(lambda mod, inp, out: calls.append(mod))
    net(torch.rand(2, 3, 9, 11)).abs().mean().backward()
    s2_layers = [m for m in net.modules() if isinstance(m, MS3Conv)]
    assert len(s2_layers) == 2 * TINY['num_block']
    for layer in s2_layers:  # each layer's single same-scale module ran once per branch
        assert sum(c is layer.same_scale for c in calls) == n_scales
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('n_scales,interaction', [(2, 'adjacent'), (3, 'adjacent'), (3, 'full'), (4, 'full')])
def test_parameter_count(n_scales, interaction):
    num_feat, num_block = 64, 16
    net = MS3EDSR(3, 3, num_feat, num_block, 2, n_scales=n_scales, interaction=interaction)
    w = num_feat // n_scales
    trunk = 2 * num_block * ms3conv_num_params(w, w, n_scales, interaction)
    fuse = n_scales * 9 * w * num_feat + num_feat
    outside = 3 * 9 * num_feat + num_feat + (9 * num_feat * 4 * num_feat + 4 * num_feat) + 9 * num_feat * 3 + 3
    assert sum(p.numel() for p in net.parameters()) == trunk + fuse + outside


@pytest.mark.parametrize('kwargs,match', [
    (dict(n_scales=0), 'n_scales'),
    (dict(n_scales=-1), 'n_scales'),
    (dict(interaction='dense'), "interaction must be one of \\('adjacent', 'full'\\)"),
    (dict(num_feat=2, n_scales=3), 'num_feat'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MS3EDSR(**{**TINY, **kwargs})
