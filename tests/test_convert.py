"""msconv_plugin.convert: the automatic conversion against the hand-written MS³ networks (the oracle), a network it
has never seen (VDSR-style, defined here), grouped / dilated / per-channel operations, and its refusals."""
import itertools

import pytest
import torch
from basicsr.archs.edsr_arch import EDSR
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F

from msconv_plugin.archs.carn_arch import CARN
from msconv_plugin.archs.ms3conv import MS3Conv, MS3Fuse, MS3Split, convert_plain_state_dict, ms3conv_num_params
from msconv_plugin.convert import ConversionError, MS3DilatedConv, ms3_convert, plain_to_ms3_state_dict
from tests.arch_checks import assert_equivalent, assert_shared_weights_and_gradients, complexity_counter

RGB = dict(num_in_ch=3, num_out_ch=3)
# name: plain type, hand-written MS³ type, arguments of both, extra arguments of the hand network, split, fuse.
# The hand networks' choices, stated as split/fuse: EDSR and RRDBNet 'trunk' fuse their conv closing the trunk
# (the automatic default would fuse the first upsampler convolution, as MS3SRResNet 'trunk' does); 'whole' fuses
# conv_last; CARN fuses c3 (its default split skips the 1×1 mean shift on its own).
ORACLE = {
    'EDSR-trunk': ('EDSR', 'MS3EDSR', dict(RGB, num_feat=16, num_block=2, upscale=2), dict(scope='trunk'), None,
                   'conv_after_body'),
    'EDSR-whole': ('EDSR', 'MS3EDSR', dict(RGB, num_feat=16, num_block=2, upscale=4), dict(scope='whole'), None,
                   'conv_last'),
    'MSRResNet-trunk': ('MSRResNet', 'MS3SRResNet', dict(RGB, num_feat=16, num_block=2, upscale=4),
                        dict(scope='trunk'), None, None),
    'MSRResNet-whole': ('MSRResNet', 'MS3SRResNet', dict(RGB, num_feat=16, num_block=2, upscale=3),
                        dict(scope='whole'), None, 'conv_last'),
    'RRDBNet-trunk': ('RRDBNet', 'MS3RRDBNet', dict(RGB, scale=4, num_feat=16, num_block=1, num_grow_ch=8),
                      dict(scope='trunk'), None, None),
    'RRDBNet-whole': ('RRDBNet', 'MS3RRDBNet', dict(RGB, scale=4, num_feat=16, num_block=1, num_grow_ch=8),
                      dict(scope='whole'), 'conv_first', 'conv_last'),
    'CARN': ('CARN', 'MS3CARN', dict(RGB, num_feat=16, upscale=2, group=1), {}, None, 'c3'),
    'CARN-M': ('CARN', 'MS3CARN', dict(RGB, num_feat=16, upscale=2, group=4), {}, 'entry', 'c3'),
}


def build(net_type, kwargs):
    return ARCH_REGISTRY.get(net_type)(**kwargs)


def hand_to_auto(state_dict, fuse):
    """The hand-written networks call their fuse ``fuse``; the automatic one keeps the replaced convolution's name."""
    return convert_plain_state_dict(state_dict, [(r'^fuse\.', f'{fuse}.')])


@pytest.mark.parametrize('name,n_scales,interaction', [
    pytest.param(*case, marks=() if case[1:] == (2, 'adjacent') else pytest.mark.slow)  # fast tier: n=2 adjacent
    for case in itertools.product(ORACLE, [2, 3], ['adjacent', 'full'])])
def test_oracle_matches_the_hand_written_network(name, n_scales, interaction):
    plain_type, hand_type, kwargs, hand_kwargs, split, fuse = ORACLE[name]
    torch.manual_seed(0)
    hand = build(hand_type, dict(kwargs, **hand_kwargs, n_scales=n_scales, interaction=interaction)).eval()
    auto = ms3_convert(build(plain_type, kwargs), n_scales, interaction, split=split, fuse=fuse).eval()
    fuse = auto.meta['ms3']['fuse']
    auto.load_state_dict(hand_to_auto(hand.state_dict(), fuse), strict=True)  # same names, same shapes
    for h, w in [(9, 11), (13, 7)]:
        x = torch.rand(2, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(auto(x), hand(x), rtol=0, atol=1e-5)

    measure = complexity_counter()
    auto_opt = dict(base=dict(kwargs, type=plain_type), n_scales=n_scales, interaction=interaction, split=split,
                    fuse=fuse)
    hand_counts = measure(hand_type, dict(kwargs, **hand_kwargs, n_scales=n_scales, interaction=interaction), 16)
    auto_counts = measure('MS3Auto', auto_opt, 16)
    assert auto_counts['params'] == hand_counts['params']
    assert auto_counts['macs'] == hand_counts['macs']
    assert auto_counts['s2_params'] == auto_counts['s2_params_closed_form'] == hand_counts['s2_params']


@pytest.mark.parametrize('plain,fuse', [
    (EDSR(3, 3, 16, 2, 3), None),
    (MSRResNet(3, 3, 16, 2, 2), None),
    (RRDBNet(3, 3, 2, 16, 1, 8), None),  # pixel-unshuffles its input: run as it is, not traced into
    (CARN(3, 3, 16, 4, group=4), 'c3'),  # the default, the grouped upsampler convolution, cannot fuse
], ids=lambda m: type(m).__name__)
def test_n_scales_1_equals_the_plain_network(plain, fuse):
    converted = ms3_convert(plain, n_scales=1, fuse=fuse)  # takes the plain weights
    assert_equivalent(plain, converted, torch.rand(2, 3, 10, 14))
    with torch.no_grad():  # a plain checkpoint maps onto the conversion
        for p in converted.parameters():
            p.normal_()
    converted.load_state_dict(plain_to_ms3_state_dict(plain.state_dict(), converted), strict=True)
    assert_equivalent(plain, converted, torch.rand(1, 3, 10, 14))


def test_plain_model_is_not_modified():
    plain = EDSR(3, 3, 16, 2, 2)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    ms3_convert(plain, n_scales=2)
    assert torch.is_tensor(plain.mean)  # EDSR assigns self.mean in forward; tracing works on a copy
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())


def test_plain_weights_fit_n_scales_1_only():
    plain = EDSR(3, 3, 16, 2, 2)
    with pytest.raises(ValueError, match='n_scales=1'):
        plain_to_ms3_state_dict(plain.state_dict(), ms3_convert(plain, n_scales=2))


class VDSR(nn.Module):
    """VDSR-style (Kim et al., CVPR 2016): conv + ReLU stack on the (pre-upsampled) image, global residual."""

    def __init__(self, num_feat=16, num_conv=5):
        super().__init__()
        widths = [3] + [num_feat] * (num_conv - 1) + [3]
        self.layers = nn.ModuleList(nn.Conv2d(i, o, 3, 1, 1) for i, o in zip(widths[:-1], widths[1:]))

    def forward(self, x):
        out = x
        for conv in self.layers[:-1]:
            out = F.relu(conv(out))
        return x + self.layers[-1](out)


@pytest.mark.parametrize('n_scales', [1, 2, 3])
def test_vdsr_defined_here_converts(n_scales):
    torch.manual_seed(0)
    plain = VDSR()
    net = ms3_convert(plain, n_scales=n_scales)
    record = net.meta['ms3']
    assert (record['split'], record['fuse']) == ('layers.0', 'layers.4')  # no upsampling: the last conv fuses
    assert record['s2'] == ['layers.1', 'layers.2', 'layers.3']
    for h, w in [(17, 23), (5, 3)]:
        assert net(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)
    w = 16 // n_scales
    expected = (9 * 3 * n_scales * w + n_scales * w) + 3 * ms3conv_num_params(w, w, n_scales, 'adjacent') + \
        (n_scales * 9 * w * 3 + 3)
    assert sum(p.numel() for p in net.parameters()) == expected
    if n_scales == 1:
        assert_equivalent(plain, net, torch.rand(2, 3, 11, 9))
    else:
        assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in plain.parameters())
        assert_shared_weights_and_gradients(net, torch.rand(2, 3, 11, 9), n_scales)


class PerChannelNet(nn.Module):
    """Grouped, dilated and depthwise convolutions, PReLU, BatchNorm and a learned per-channel scale, between the
    first and the last convolution."""

    def __init__(self, c=16):
        super().__init__()
        self.head = nn.Conv2d(3, c, 3, 1, 1)
        self.grouped = nn.Conv2d(c, c, 3, 1, 1, groups=4)
        self.dilated = nn.Conv2d(c, c, 3, 1, 2, dilation=2)
        self.depthwise = nn.Conv2d(c, c, 5, 1, 2, groups=c)
        self.prelu = nn.PReLU(c)
        self.norm = nn.BatchNorm2d(c)
        self.scale = nn.Parameter(torch.rand(1, c, 1, 1))
        self.tail = nn.Conv2d(c, 3, 3, 1, 1)

    def forward(self, x):
        feat = self.head(x)
        out = self.prelu(self.grouped(feat))
        out = self.norm(self.dilated(out)) * self.scale
        return self.tail(self.depthwise(out) + feat)


@pytest.mark.parametrize('n_scales', [1, 2, 3])
def test_grouped_dilated_depthwise_and_per_channel_modules(n_scales):
    torch.manual_seed(0)
    plain = PerChannelNet().eval()
    net = ms3_convert(plain, n_scales=n_scales)
    w = 16 // n_scales // 4 * 4  # a multiple of the 4 groups
    assert net.meta['ms3']['branch_width'] == w
    assert isinstance(net.dilated, MS3DilatedConv) and net.dilated.same_scale.dilation == (2, 2)
    assert net.grouped.same_scale.groups == 4 and net.depthwise.same_scale.groups == w
    assert net.prelu.weight.shape == (w, ) and net.norm.running_mean.shape == (w, ) and net.scale.shape == (1, w, 1, 1)
    assert sorted(net.meta['ms3']['shared']) == ['norm', 'prelu', 'scale']
    assert net(torch.rand(2, 3, 9, 7)).shape == (2, 3, 9, 7)
    if n_scales == 1:
        assert_equivalent(plain, net.eval(), torch.rand(2, 3, 9, 7))
    else:
        calls = []
        net.prelu.register_forward_hook(lambda *args: calls.append(1))
        net.eval()(torch.rand(1, 3, 9, 7))
        assert len(calls) == n_scales  # one module, every branch
        net.train()
        assert_shared_weights_and_gradients(net, torch.rand(2, 3, 9, 7), n_scales)


@pytest.mark.parametrize('dilation', [2, 3])
def test_dilated_s2_layer_is_a_dilated_convolution_at_n_scales_1(dilation):
    torch.manual_seed(0)
    layer = MS3DilatedConv(4, 6, dilation, n_scales=1)
    conv = layer.same_scale
    x = torch.rand(1, 4, 11, 9)
    torch.testing.assert_close(layer([x])[0], F.conv2d(x, conv.weight, conv.bias, padding=dilation,
                                                       dilation=dilation))


def test_split_and_fuse_modules_and_names():
    net = ms3_convert(EDSR(3, 3, 16, 2, 2), n_scales=2, fuse='conv_after_body')
    assert isinstance(net.ms3_split, MS3Split) and isinstance(net.conv_after_body, MS3Fuse)
    assert isinstance(net.get_submodule('body.0.conv1'), MS3Conv)
    assert 'body.0.conv1.same_scale.weight' in net.state_dict()


class WindowAttention(nn.Module):

    def forward(self, x):
        b, c, h, w = x.shape
        return x * torch.softmax(x.flatten(2), -1).view(b, c, h, w)


class DataDependent(nn.Module):

    def forward(self, x):
        return x if x.mean() > 0 else -x


class Refused(nn.Module):
    """conv → (something) → conv → conv."""

    def __init__(self, middle):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, 1, 1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), middle)
        self.tail = nn.Conv2d(8, 3, 3, 1, 1)

    def forward(self, x):
        return self.tail(self.body(self.head(x)))


class SideOutput(nn.Module):

    def __init__(self):
        super().__init__()
        self.head, self.body, self.tail = nn.Conv2d(3, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(8, 3, 3, 1, 1)

    def forward(self, x):
        feat = self.body(self.head(x))
        return self.tail(feat), feat.mean()


@pytest.mark.parametrize('net,match', [
    (Refused(WindowAttention()), r"getattr at 'body\.1'.*move split or fuse"),
    (Refused(nn.Linear(8, 8)), r"Linear module at 'body\.1'.*leave that part of the network plain"),
    (Refused(nn.Conv2d(8, 8, 3, 2, 1)), r"Conv2d module at 'body\.1'.*stride"),
    (Refused(nn.Conv2d(8, 1, 3, 1, 1)), r"Conv2d module at 'body\.1'.*no channel per branch"),
    (Refused(DataDependent()), r"cannot trace Refused in module 'body\.1'"),
    (SideOutput(), r"method \.mean\(\) at '\(top level\)'.*reads the multi-scale features"),
], ids=['window', 'linear', 'strided', 'one-channel', 'data-dependent', 'side-output'])
def test_unconvertible_operations_are_refused_with_their_module_path(net, match):
    with pytest.raises(ConversionError, match=match):
        ms3_convert(net, n_scales=2)


def test_window_attention_outside_the_region_is_fine():
    net = Refused(WindowAttention())
    net.tail = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), WindowAttention(), nn.Conv2d(8, 3, 3, 1, 1))
    net.body = nn.Conv2d(8, 8, 3, 1, 1)
    converted = ms3_convert(net, n_scales=2, fuse='tail.0')  # the attention follows the fuse: plain
    assert converted(torch.rand(1, 3, 7, 9)).shape == (1, 3, 7, 9)


@pytest.mark.parametrize('kwargs,match', [
    (dict(split='nope'), r"split 'nope' is not a convolution.*conv_first"),
    (dict(fuse='conv_first', split='conv_last'), 'does not follow split'),
    (dict(n_scales=0), 'n_scales'),
    (dict(interaction='dense'), 'interaction'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ms3_convert(EDSR(3, 3, 16, 1, 2), **kwargs)
