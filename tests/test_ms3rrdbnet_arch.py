import itertools

import pytest
import torch
from basicsr.archs.edsr_arch import EDSR
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.utils.registry import ARCH_REGISTRY

from msconv_plugin.archs.ms3conv import MS3Conv
from msconv_plugin.archs.ms3rrdbnet_arch import MS3RRDBNet, rrdbnet_to_ms3rrdbnet, unshuffle_factor
from msconv_plugin.inference import input_multiple
from tests.arch_checks import assert_equivalent, assert_shared_weights_and_gradients

TINY = dict(num_in_ch=3, num_out_ch=3, num_feat=12, num_block=1, num_grow_ch=6)


def test_registered():
    assert ARCH_REGISTRY.get('MS3RRDBNet') is MS3RRDBNet


@pytest.mark.parametrize('scale,n_scales,interaction,scope',
                         list(itertools.product([1, 2, 4], [1, 2, 3], ['adjacent', 'full'], ['trunk', 'whole'])))
def test_shapes(scale, n_scales, interaction, scope):
    net = MS3RRDBNet(**TINY, scale=scale, n_scales=n_scales, interaction=interaction, scope=scope)
    # scale 1 and 2 pixel-unshuffle the input (as RRDBNet does), so their sizes must divide by 4 and 2
    sizes = {1: [(12, 20), (4, 4)], 2: [(18, 22), (2, 6)], 4: [(17, 23), (3, 5)]}[scale]
    for h, w in sizes:
        assert net(torch.rand(2, 3, h, w)).shape == (2, 3, h * scale, w * scale)


def test_unshuffled_input_must_divide():
    with pytest.raises(ValueError, match='multiples of 2'):
        MS3RRDBNet(**TINY, scale=2)(torch.rand(1, 3, 17, 23))


def test_a_renamed_subclass_still_unshuffles():
    """The factor follows the network, not its class name: a user's subclass runs (and checks its input) as ours."""
    class MyNet(MS3RRDBNet):
        pass

    torch.manual_seed(0)
    ours, theirs = MS3RRDBNet(**TINY, scale=2), MyNet(**TINY, scale=2)
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, 16, 24)
    assert torch.equal(ours(x), theirs(x))
    with pytest.raises(ValueError, match='multiples of 2'):
        theirs(torch.rand(1, 3, 17, 23))
    assert input_multiple(theirs) == input_multiple(ours) == 2  # and inference pads its input for it


@pytest.mark.parametrize('scale', [1, 2, 4])
def test_unshuffle_factor_is_what_the_networks_do(scale):
    """The one rule that inference, option checks and the studies use: BasicSR's RRDBNet and ours feed their first
    convolution ``3 * factor**2`` channels; other networks take their input as it is."""
    factor = unshuffle_factor('RRDBNet', scale)
    assert factor == {1: 4, 2: 2, 4: 1}[scale]
    assert unshuffle_factor('MS3RRDBNet', scale) == factor
    assert RRDBNet(3, 3, scale, num_feat=8, num_block=1, num_grow_ch=4).conv_first.in_channels == 3 * factor**2
    assert MS3RRDBNet(**TINY, scale=scale).conv_first.in_channels == 3 * factor**2
    assert unshuffle_factor('EDSR', scale) == unshuffle_factor('MS3EDSR', scale) == 1
    # a class or a network: its own name or any base's decides, so a user's subclass counts as what it extends
    subclass = type('MyNet', (MS3RRDBNet, ), {})
    assert unshuffle_factor(subclass, scale) == unshuffle_factor(subclass(**TINY, scale=scale), scale) == factor
    assert unshuffle_factor(type('MyEDSR', (EDSR, ), {}), scale) == 1


def test_dense_connections_are_branch_wise():
    net = MS3RRDBNet(3, 3, 4, num_feat=64, num_block=1, num_grow_ch=32, n_scales=2)
    rdb = net.body[0].rdb1
    in_widths = [getattr(rdb, f'conv{k}').same_scale.in_channels for k in range(1, 6)]
    assert in_widths == [32, 48, 64, 80, 96]  # per branch: 32 + k * 16
    assert all(isinstance(getattr(rdb, f'conv{k}'), MS3Conv) for k in range(1, 6))


@pytest.mark.parametrize('scale,scope', list(itertools.product([1, 2, 4], ['trunk', 'whole'])))
def test_n_scales_1_is_rrdbnet(scale, scope):
    torch.manual_seed(0)
    plain = RRDBNet(3, 3, scale, num_feat=16, num_block=2, num_grow_ch=8)
    ms3 = MS3RRDBNet(3, 3, scale, num_feat=16, num_block=2, num_grow_ch=8, n_scales=1, scope=scope)
    ms3.load_state_dict(rrdbnet_to_ms3rrdbnet(plain.state_dict(), scope), strict=True)
    assert_equivalent(plain, ms3, torch.rand(2, 3, 16, 24))


@pytest.mark.parametrize('n_scales,interaction,scope', [(2, 'adjacent', 'trunk'), (3, 'full', 'whole')])
def test_every_parameter_gets_a_gradient_and_weights_are_shared(n_scales, interaction, scope):
    torch.manual_seed(0)
    net = MS3RRDBNet(**TINY, n_scales=n_scales, interaction=interaction, scope=scope)
    assert_shared_weights_and_gradients(net, torch.rand(2, 3, 9, 11), n_scales)


@pytest.mark.parametrize('kwargs,match', [
    (dict(n_scales=0), 'n_scales'),
    (dict(interaction='ring'), 'interaction'),
    (dict(num_feat=2, n_scales=3), 'num_feat'),
    (dict(num_grow_ch=2, n_scales=3), 'num_grow_ch'),
    (dict(scale=3), 'scale'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MS3RRDBNet(**{**TINY, **kwargs})
