from functools import partial

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F

from .carn_arch import CARNUpsample, MeanShift, check_carn_args
from .ms3conv import DEFAULT_CROSS_SCALE_INIT
from .ms3conv import (MS3Conv, MS3Fuse, MS3ResidualBlockNoBN, MS3Split, add_scaled, branchwise, check_cross_scale_init,
                      check_ms3_args, convert_plain_state_dict, scale_cross_scale_init_)


def ms3carn_branch_feat(num_feat, n_scales, group):
    """Channels of each branch: the largest multiple of ``group`` not above ``num_feat // n_scales``.

    Group convolutions need a multiple of ``group`` per branch; the split then takes ``n_scales`` times this many
    channels (the entry convolution produces exactly these), and the fuse maps back to ``num_feat``.
    """
    branch_feat = num_feat // n_scales // group * group
    if branch_feat == 0:
        raise ValueError(f'num_feat // n_scales ({num_feat} // {n_scales} = {num_feat // n_scales}) must be >= group '
                         f'({group}) so that each branch holds at least one channel per group.')
    return branch_feat


class MS3ResidualBlock(MS3ResidualBlockNoBN):
    """CARN's residual block with S2 layers: ``MS3ResidualBlockNoBN`` with a branch-wise ReLU after the addition.

    Args:
        num_feat (int): Channels of EACH branch. Default: 64.
        n_scales, interaction, downsample, upsample: see ``MS3Conv``.
    """

    def forward(self, xs):
        return branchwise(F.relu, super().forward(xs))


class MS3EResidualBlock(nn.Module):
    """CARN-M's efficient residual block with S2 layers (two 3×3 group convolutions, one 1×1 convolution).

    Args:
        num_feat (int): Channels of EACH branch; a multiple of ``group``. Default: 64.
        group (int): Groups of the two 3×3 S2 layers. Default: 4.
        n_scales, interaction, downsample, upsample: see ``MS3Conv``.
    """

    def __init__(self, num_feat=64, group=4, **ms3):
        super().__init__()
        self.conv1 = MS3Conv(num_feat, num_feat, groups=group, **ms3)
        self.conv2 = MS3Conv(num_feat, num_feat, groups=group, **ms3)
        self.conv3 = MS3Conv(num_feat, num_feat, kernel_size=1, **ms3)

    def forward(self, xs):
        out = self.conv3(branchwise(F.relu, self.conv2(branchwise(F.relu, self.conv1(xs)))))
        return branchwise(F.relu, add_scaled(xs, out))


def ms3_cascade(xs, blocks, convs):
    """CARN's ``cascade`` on multi-scale features: every concatenation is branch-wise, so the k-th cascading S2
    layer takes (k+1) times the branch width per branch. The last of ``convs`` may be the fuse (S3), whose output
    is one full-resolution tensor.
    """
    concat = xs
    for block, conv in zip(blocks, convs):
        concat = [torch.cat(pair, 1) for pair in zip(concat, block(xs))]
        xs = conv(concat)
        xs = F.relu(xs) if torch.is_tensor(xs) else branchwise(F.relu, xs)
    return xs


class MS3CascadingBlock(nn.Module):
    """CARN's cascading block with S2 layers: its residual blocks' convolutions and its cascading 1×1 convolutions.

    Args:
        num_feat (int): Channels of EACH branch. Default: 64.
        group (int): 1: three residual blocks (CARN). >1: ONE efficient residual block with ``group`` groups, used
            three times (CARN-M). Default: 1.
        n_scales, interaction, downsample, upsample: see ``MS3Conv``.
    """

    def __init__(self, num_feat=64, group=1, **ms3):
        super().__init__()
        self.shared = group > 1
        if self.shared:
            self.b1 = MS3EResidualBlock(num_feat, group, **ms3)
        else:
            self.b1, self.b2, self.b3 = (MS3ResidualBlock(num_feat, **ms3) for _ in range(3))
        self.c1, self.c2, self.c3 = (MS3Conv(k * num_feat, num_feat, kernel_size=1, **ms3) for k in (2, 3, 4))

    def forward(self, xs):
        blocks = (self.b1, ) * 3 if self.shared else (self.b1, self.b2, self.b3)
        return ms3_cascade(xs, blocks, (self.c1, self.c2, self.c3))


@ARCH_REGISTRY.register()
class MS3CARN(nn.Module):
    """CARN / CARN-M with MS³-Conv: ``entry`` → split (S1); every convolution of the cascading blocks (residual
    blocks and cascading 1×1 convolutions) and the trunk's cascading convolutions ``c1``, ``c2`` → S2 layers; the
    trunk's last convolution ``c3`` → fuse (S3). The mean shifts, the upsampler and ``exit`` stay as in CARN.

    CARN paper: Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network (Ahn, Kang, Sohn,
    ECCV 2018). MS³-Conv: patent CN111353939B; Feng et al., Exploring Multi-Scale Feature Propagation and
    Communication for Image Super Resolution, arXiv 2008.00239.

    Concatenations of the cascade are branch-wise (branch i of the concatenation is the concatenation of the
    branches i), so the k-th cascading S2 layer of a block takes (k+1)·w channels per branch, w the branch width.
    Branch width: the largest multiple of ``group`` not above ``num_feat // n_scales`` (``ms3carn_branch_feat``;
    64 channels, n=3: 21 for CARN, 20 for CARN-M); ``entry`` produces ``n_scales * w`` channels, all of them split.

    Args:
        num_in_ch (int): Channel number of inputs; must be 3 (RGB). Default: 3.
        num_out_ch (int): Channel number of outputs; must be 3 (RGB). Default: 3.
        num_feat (int): Channel number of the fused features (the upsampler's input); a multiple of ``group``.
            Default: 64.
        upscale (int): Upsampling factor: 2^n or 3. Default: 4.
        group (int): 1: CARN; larger: CARN-M with ``group`` groups (see ``CARN``). Default: 1.
        n_scales (int): Number of scales; 1 is exactly CARN (see ``carn_to_ms3carn``). Default: 2.
        interaction (str): Cross-scale interaction, 'adjacent' or 'full'. Default: 'adjacent'.
        downsample (str): 'avg', 'max' or 'learned' (see ``MS3Conv``). Default: 'avg'.
        upsample (str): 'nearest', 'bilinear' or 'learned' (between scales; the image upsampler is CARN's).
            Default: 'nearest'.
        cross_scale_init (float): Scale of the cross-scale kernels' initial weights: 1 initialises them like the
            same-scale kernel, 0 starts the branches without interaction (``scale_cross_scale_init_``). Default: 0
            (``DEFAULT_CROSS_SCALE_INIT``).
    """

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=64,
                 upscale=4,
                 group=1,
                 n_scales=2,
                 interaction='adjacent',
                 downsample='avg',
                 upsample='nearest',
                 cross_scale_init=DEFAULT_CROSS_SCALE_INIT):
        super().__init__()
        check_carn_args(num_in_ch, num_out_ch, num_feat, group)
        check_ms3_args(n_scales, interaction, downsample, upsample, num_feat=num_feat)
        check_cross_scale_init(cross_scale_init)
        ms3 = dict(n_scales=n_scales, interaction=interaction, downsample=downsample, upsample=upsample)
        branch_feat = ms3carn_branch_feat(num_feat, n_scales, group)

        self.sub_mean = MeanShift(-1)
        self.add_mean = MeanShift(1)

        self.entry = nn.Conv2d(num_in_ch, n_scales * branch_feat, 3, 1, 1)
        self.split = MS3Split(n_scales, downsample)
        self.b1, self.b2, self.b3 = (MS3CascadingBlock(branch_feat, group, **ms3) for _ in range(3))
        self.c1, self.c2 = (MS3Conv(k * branch_feat, branch_feat, kernel_size=1, **ms3) for k in (2, 3))
        self.fuse = MS3Fuse(4 * branch_feat, num_feat, n_scales, kernel_size=1, upsample=upsample)
        self.upsample = CARNUpsample(upscale, num_feat, group)
        self.exit = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        scale_cross_scale_init_(self, cross_scale_init)

    def forward(self, x):
        x = self.entry(self.sub_mean(x))
        fuse = partial(self.fuse, size=x.shape[-2:])
        x = ms3_cascade(self.split(x), (self.b1, self.b2, self.b3), (self.c1, self.c2, fuse))
        return self.add_mean(self.exit(self.upsample(x)))


def carn_to_ms3carn(state_dict):
    """Map a ``CARN`` state dict (CARN or CARN-M) to ``MS3CARN(n_scales=1)`` with the same other arguments.

    Convolutions of the cascading blocks ``b<i>.b<j>.conv<k>.*`` and ``b<i>.c<k>.*``, and the trunk's ``c1.*``,
    ``c2.*`` → ``<same name>.same_scale.*``; ``c3.*`` → ``fuse.convs.0.*``; ``sub_mean``, ``add_mean``, ``entry``,
    ``upsample`` and ``exit`` keep their names.
    """
    return convert_plain_state_dict(state_dict, [
        (r'^c3\.', 'fuse.convs.0.'),
        (r'^(c[12]|b\d\.c\d|b\d\.b\d\.conv\d)\.', r'\1.same_scale.'),
    ])
