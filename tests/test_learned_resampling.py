"""``downsample='learned'`` / ``upsample='learned'``: depthwise filters that start exactly as 2×2 average pooling and
bilinear enlargement, whose parameters and multiply-adds are counted, and which training reaches."""
import pytest
import torch
from basicsr.archs import build_network
from torch.nn import functional as F

from msconv_plugin.archs.ms3conv import (LearnedDownsample, LearnedUpsample, MS3Conv, MS3Fuse, ms3conv_num_params,
                                         num_resampling_steps)
from msconv_plugin.complexity import count, s2_parameter_check
from tests.test_ms3conv import SMALL_NETWORKS, _build

LEARNED = dict(downsample='learned', upsample='learned')


@pytest.mark.parametrize('size', [(10, 14), (7, 9)])
def test_filters_start_as_average_pooling_and_bilinear(size):
    """Exactly, borders included (the down filter on even sizes, where average pooling is defined without
    remainder)."""
    x = torch.randn(2, 5, *size)
    if size[0] % 2 == 0:
        torch.testing.assert_close(LearnedDownsample(5)(x), F.avg_pool2d(x, 2), rtol=0, atol=1e-6)
    bilinear = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
    torch.testing.assert_close(LearnedUpsample(5)(x), bilinear, rtol=1e-5, atol=1e-6)


def test_upsampling_filter_spans_nearest():
    """The identity filter after nearest is nearest enlargement."""
    up = LearnedUpsample(3)
    with torch.no_grad():
        up.weight.zero_()
        up.weight[:, :, 1, 1] = 1
    x = torch.randn(1, 3, 8, 9)
    torch.testing.assert_close(up(x), F.interpolate(x, scale_factor=2, mode='nearest'), rtol=0, atol=0)


@pytest.mark.parametrize('interaction,n_scales,steps', [('adjacent', 2, 1), ('adjacent', 4, 3), ('full', 2, 1),
                                                        ('full', 3, 4), ('full', 4, 10)])
def test_resampling_steps_and_parameters_follow_the_closed_form(interaction, n_scales, steps):
    assert num_resampling_steps(n_scales, interaction) == steps
    for down, up, extra in [('learned', 'nearest', 9 * 6 * steps), ('avg', 'learned', 9 * 10 * steps),
                            ('learned', 'learned', 9 * 16 * steps)]:
        layer = MS3Conv(6, 10, n_scales, interaction, downsample=down, upsample=up)
        counted = sum(p.numel() for p in layer.parameters())
        assert counted == ms3conv_num_params(6, 10, n_scales, interaction, downsample=down, upsample=up)
        assert counted == ms3conv_num_params(6, 10, n_scales, interaction) + extra


def test_one_scale_learns_nothing_extra():
    layer = MS3Conv(6, 10, 1, **LEARNED)
    assert sum(p.numel() for p in layer.parameters()) == 9 * 6 * 10 + 10
    assert len(MS3Fuse(6, 3, 1, upsample='learned').resample) == 0


@pytest.mark.parametrize('net_type', list(SMALL_NETWORKS))
def test_networks_start_exactly_as_average_pooling_and_bilinear(net_type):
    """With the weights of the network with fixed down-/up-sampling ('avg', 'bilinear'), the learned network
    computes the same image at initialisation, and the parameters it adds are exactly its resampling filters
    (counted by the S2 closed form)."""
    fixed = _build(net_type, n_scales=2, cross_scale_init=1, upsample='bilinear').eval()
    learned = _build(net_type, n_scales=2, cross_scale_init=1, **LEARNED).eval()
    missing, unexpected = learned.load_state_dict(fixed.state_dict(), strict=False)
    assert not unexpected and missing and all('resample' in key for key in missing)
    counted, closed_form = s2_parameter_check(learned)
    assert counted == closed_form
    x = torch.rand(1, 3, *((14, 10) if net_type == 'MS3RRDBNet' else (13, 10)))  # odd sizes where the split sees them
    with torch.no_grad():
        torch.testing.assert_close(learned(x), fixed(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('net_type', list(SMALL_NETWORKS))
def test_gradients_reach_every_learned_filter(net_type):
    net = _build(net_type, n_scales=2, cross_scale_init=1, **LEARNED)
    net(torch.rand(2, 3, 12, 12)).square().mean().backward()
    filters = {name: p for name, p in net.named_parameters() if 'resample' in name}
    assert filters
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in filters.values()), \
        [name for name, p in filters.items() if p.grad is None or not p.grad.abs().sum() > 0]


def test_multiply_adds_of_the_filters_are_counted():
    """MS3EDSR n=2 ×2, scope whole, one block, LR 16×16: four S2 layers (two in the block, conv_after_body, the
    upsampler's c→4c) each halve a c-channel 16×16 input once (9 multiply-adds per 8×8 output element) and double
    their c- or 4c-channel output once (9 per 16×16 element); the fuse doubles 3 channels from 16×16 to 32×32."""
    c = 6
    kwargs = dict(type='MS3EDSR', num_in_ch=3, num_out_ch=3, num_feat=2 * c, num_block=1, upscale=2, scope='whole')
    default, _ = count(build_network(dict(kwargs)), (3, 16, 16))
    learned, _ = count(build_network(dict(kwargs, **LEARNED)), (3, 16, 16))
    down = 4 * 9 * c * 8 * 8
    up = 9 * (3 * c + 4 * c) * 16 * 16 + 9 * 3 * 32 * 32
    assert learned - default == down + up


def test_drift_measures_how_far_the_filters_moved(tmp_path, capsys, monkeypatch):
    """``resampling_drift`` (and scripts/resampling_drift.py): 0 right after initialisation, the mean absolute change
    per tap after one, None for the kinds a network lacks; the script refuses a checkpoint without learned filters
    in one line."""
    from msconv_plugin.archs.ms3conv import resampling_drift
    from msconv_plugin.cli import USER_ERROR_EXIT, run
    from tests.scripts import load_script
    net = _build('MS3EDSR', n_scales=3, interaction='full', **LEARNED)
    assert resampling_drift(net.state_dict()) == {'down': 0, 'up': 0}
    with torch.no_grad():
        for name, p in net.named_parameters():
            if 'resample' in name:
                p.add_(0.1 if '1to2' in name or '2to3' in name or '1to3' in name else -0.3)
    drift = resampling_drift(net.state_dict())
    assert drift['down'] == pytest.approx(0.1) and drift['up'] == pytest.approx(0.3)
    assert resampling_drift(_build('MS3EDSR', n_scales=2, upsample='learned').state_dict())['down'] is None

    script = load_script('resampling_drift')
    torch.save({'params': net.state_dict()}, tmp_path / 'learned.pth')
    torch.save({'params': _build('MS3EDSR', n_scales=2).state_dict()}, tmp_path / 'plain.pth')
    assert script.main([str(tmp_path / 'learned.pth')]) is None
    assert 'down 0.1000, up 0.3000' in capsys.readouterr().out
    monkeypatch.setattr('sys.argv', ['resampling_drift.py', str(tmp_path / 'plain.pth')])
    assert run(script.main) == USER_ERROR_EXIT
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'no learned resampling filters' in err
