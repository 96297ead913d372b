from basicsr.archs.arch_util import default_init_weights, make_layer, pixel_unshuffle
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F

from .ms3conv import DEFAULT_CROSS_SCALE_INIT
from .ms3conv import (MS3Conv, MS3Fuse, MS3Split, add_scaled, branchwise, branchwise_cat, check_cross_scale_init,
                      check_ms3_args, check_scope, convert_plain_state_dict, scale_cross_scale_init_)


def unshuffle_factor(arch, scale):
    """How much an RRDBNet-like network (BasicSR's ``RRDBNet``, ``MS3RRDBNet`` or a subclass of either) pixel-unshuffles
    its input at ``scale``: 4 at ×1, 2 at ×2, else 1 (every other network: 1). The input's height and width must be
    multiples of it. ``arch`` is a registered name (the ``type`` of an option file), a network class or a network."""
    if isinstance(arch, nn.Module):
        arch = type(arch)
    names = [c.__name__ for c in arch.__mro__] if isinstance(arch, type) else [str(arch)]
    return 4 // scale if scale in (1, 2) and any('RRDBNet' in name for name in names) else 1


class MS3ResidualDenseBlock(nn.Module):
    """ESRGAN's residual dense block with S2 layers; the dense concatenations are branch-wise.

    Args:
        num_feat (int): Channels of EACH branch.
        num_grow_ch (int): Growth channels of EACH branch.
        ms3 (dict): ``n_scales``, ``interaction``, ``downsample``, ``upsample`` of ``MS3Conv``.
    """

    def __init__(self, num_feat, num_grow_ch, **ms3):
        super().__init__()
        self.conv1 = MS3Conv(num_feat, num_grow_ch, **ms3)
        self.conv2 = MS3Conv(num_feat + num_grow_ch, num_grow_ch, **ms3)
        self.conv3 = MS3Conv(num_feat + 2 * num_grow_ch, num_grow_ch, **ms3)
        self.conv4 = MS3Conv(num_feat + 3 * num_grow_ch, num_grow_ch, **ms3)
        self.conv5 = MS3Conv(num_feat + 4 * num_grow_ch, num_feat, **ms3)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        default_init_weights([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x):
        x1 = branchwise(self.lrelu, self.conv1(x))
        x2 = branchwise(self.lrelu, self.conv2(branchwise_cat(x, x1)))
        x3 = branchwise(self.lrelu, self.conv3(branchwise_cat(x, x1, x2)))
        x4 = branchwise(self.lrelu, self.conv4(branchwise_cat(x, x1, x2, x3)))
        x5 = self.conv5(branchwise_cat(x, x1, x2, x3, x4))
        return add_scaled(x, x5, 0.2)


class MS3RRDB(nn.Module):
    """ESRGAN's residual-in-residual dense block on multi-scale features (per-branch widths)."""

    def __init__(self, num_feat, num_grow_ch=32, **ms3):
        super().__init__()
        self.rdb1 = MS3ResidualDenseBlock(num_feat, num_grow_ch, **ms3)
        self.rdb2 = MS3ResidualDenseBlock(num_feat, num_grow_ch, **ms3)
        self.rdb3 = MS3ResidualDenseBlock(num_feat, num_grow_ch, **ms3)

    def forward(self, x):
        return add_scaled(x, self.rdb3(self.rdb2(self.rdb1(x))), 0.2)


@ARCH_REGISTRY.register()
class MS3RRDBNet(nn.Module):
    """BasicSR's RRDBNet (the ESRGAN generator) with MS³-Conv.

    ``conv_first`` → split (S1), every convolution of the residual dense blocks → S2 layer (the dense
    concatenations become branch-wise concatenations, so the S2 layers take growing per-branch widths).
    ``scope`` decides where the fuse (S3) goes:

    - ``'trunk'`` (default): the fuse replaces ``conv_body``; the long skip, the upsampler (``conv_up1``,
      ``conv_up2``, ``conv_hr``) and ``conv_last`` stay plain.
    - ``'whole'``: ``conv_body`` and the upsampler's convolutions become S2 layers (the long skip and the nearest
      enlargements act branch by branch) and the fuse replaces ``conv_last``.

    ESRGAN paper: ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks.
    MS³-Conv: patent CN111353939B; Feng et al., arXiv 2008.00239.

    Args:
        num_in_ch (int): Channel number of inputs.
        num_out_ch (int): Channel number of outputs.
        scale (int): Upsampling factor: 1, 2 (the input is pixel-unshuffled first, as in RRDBNet) or 4.
            Default: 4.
        num_feat (int): Channel number of intermediate features; each branch has ``num_feat // n_scales``.
            Default: 64.
        num_block (int): Block number in the trunk network. Default: 23.
        num_grow_ch (int): Channels for each growth; each branch grows by ``num_grow_ch // n_scales``.
            Default: 32.
        n_scales (int): Number of scales; 1 is exactly RRDBNet (see ``rrdbnet_to_ms3rrdbnet``). Default: 2.
        interaction (str): Cross-scale interaction, 'adjacent' or 'full'. Default: 'adjacent'.
        downsample (str): 'avg', 'max' or 'learned' (see ``MS3Conv``). Default: 'avg'.
        upsample (str): 'nearest', 'bilinear' or 'learned'. Default: 'nearest'.
        scope (str): 'trunk' or 'whole', see above. Default: 'trunk'.
        cross_scale_init (float): Scale of the cross-scale kernels' initial weights: 1 initialises them like the
            same-scale kernel, 0 starts the branches without interaction (``scale_cross_scale_init_``). Default: 0
            (``DEFAULT_CROSS_SCALE_INIT``).
    """

    def __init__(self,
                 num_in_ch,
                 num_out_ch,
                 scale=4,
                 num_feat=64,
                 num_block=23,
                 num_grow_ch=32,
                 n_scales=2,
                 interaction='adjacent',
                 downsample='avg',
                 upsample='nearest',
                 scope='trunk',
                 cross_scale_init=DEFAULT_CROSS_SCALE_INIT):
        super().__init__()
        check_ms3_args(n_scales, interaction, downsample, upsample, num_feat=num_feat)
        check_scope(scope)
        check_cross_scale_init(cross_scale_init)
        if num_grow_ch < n_scales:
            raise ValueError(f'num_grow_ch ({num_grow_ch}) must be >= n_scales ({n_scales}) so that each branch '
                             'grows by at least one channel.')
        if scale not in (1, 2, 4):
            raise ValueError(f'scale must be one of (1, 2, 4), got {scale!r}.')
        ms3 = dict(n_scales=n_scales, interaction=interaction, downsample=downsample, upsample=upsample)
        branch_feat = num_feat // n_scales
        self.scale = scale
        self.scope = scope
        if scale == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1:
            num_in_ch = num_in_ch * 16

        # With scope 'trunk' the long skip reads all of conv_first's channels; otherwise only the branches do.
        self.conv_first = nn.Conv2d(num_in_ch, num_feat if scope == 'trunk' else n_scales * branch_feat, 3, 1, 1)
        self.split = MS3Split(n_scales, downsample)
        self.body = make_layer(MS3RRDB, num_block, num_feat=branch_feat, num_grow_ch=num_grow_ch // n_scales, **ms3)
        if scope == 'trunk':
            self.fuse = MS3Fuse(branch_feat, num_feat, n_scales, upsample=upsample)
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        else:
            self.conv_body = MS3Conv(branch_feat, branch_feat, **ms3)
            self.conv_up1 = MS3Conv(branch_feat, branch_feat, **ms3)
            self.conv_up2 = MS3Conv(branch_feat, branch_feat, **ms3)
            self.conv_hr = MS3Conv(branch_feat, branch_feat, **ms3)
            self.fuse = MS3Fuse(branch_feat, num_out_ch, n_scales, upsample=upsample)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        scale_cross_scale_init_(self, cross_scale_init)

    def forward(self, x):
        factor = unshuffle_factor('MS3RRDBNet', self.scale)  # a constant here: subclasses share this forward
        if x.size(-2) % factor or x.size(-1) % factor:
            raise ValueError(f'RRDBNet with scale {self.scale} pixel-unshuffles its input by {factor}: '
                             f'height and width must be multiples of {factor}, got {tuple(x.shape[-2:])}.')
        feat = pixel_unshuffle(x, scale=factor) if factor > 1 else x
        feat = self.conv_first(feat)
        size = feat.shape[-2:]
        if self.scope == 'trunk':
            feat = feat + self.fuse(self.body(self.split(feat)), size)
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode='nearest')))
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode='nearest')))
            return self.conv_last(self.lrelu(self.conv_hr(feat)))

        def enlarge(xs):
            return branchwise(lambda t: F.interpolate(t, scale_factor=2, mode='nearest'), xs)

        feat = self.split(feat)
        feat = add_scaled(feat, self.conv_body(self.body(feat)))
        feat = branchwise(self.lrelu, self.conv_up1(enlarge(feat)))
        feat = branchwise(self.lrelu, self.conv_up2(enlarge(feat)))
        return self.fuse(branchwise(self.lrelu, self.conv_hr(feat)), (size[0] * 4, size[1] * 4))


def rrdbnet_to_ms3rrdbnet(state_dict, scope='trunk'):
    """Map a BasicSR ``RRDBNet`` state dict to ``MS3RRDBNet(n_scales=1, scope=scope)``.

    Dense-block convolutions gain ``.same_scale``; with ``scope='trunk'`` ``conv_body`` → ``fuse.convs.0``; with
    ``scope='whole'`` ``conv_body``/``conv_up1``/``conv_up2``/``conv_hr`` gain ``.same_scale`` and ``conv_last`` →
    ``fuse.convs.0``.
    """
    check_scope(scope)
    renames = [(r'^body\.(\d+)\.(rdb\d)\.(conv\d)\.', r'body.\1.\2.\3.same_scale.')]
    if scope == 'trunk':
        renames.append((r'^conv_body\.', 'fuse.convs.0.'))
    else:
        renames += [(r'^(conv_body|conv_up1|conv_up2|conv_hr)\.', r'\1.same_scale.'),
                    (r'^conv_last\.', 'fuse.convs.0.')]
    return convert_plain_state_dict(state_dict, renames)
