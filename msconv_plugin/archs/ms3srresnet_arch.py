from basicsr.archs.arch_util import default_init_weights, make_layer
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F

from .ms3conv import DEFAULT_CROSS_SCALE_INIT
from .ms3conv import (MS3Conv, MS3Fuse, MS3ResidualBlockNoBN, MS3Split, branchwise, check_cross_scale_init,
                      check_ms3_args, check_scope, convert_plain_state_dict, scale_cross_scale_init_)


@ARCH_REGISTRY.register()
class MS3SRResNet(nn.Module):
    """BasicSR's MSRResNet (modified SRResNet) with MS³-Conv.

    ``conv_first`` → split (S1); both convolutions of every residual block → S2 layers. MSRResNet has no
    convolution closing its trunk, so what the fuse (S3) replaces depends on ``scope``:

    - ``'trunk'``: the fuse replaces ``upconv1``, the first convolution after the trunk (it maps each branch to
      ``num_feat * r**2`` channels before the pixel shuffle); the rest of the upsampler stays plain.
    - ``'whole'`` (default): the upsampler's convolutions (``upconv1``, ``upconv2``, ``conv_hr``) become S2
      layers too, with branch-wise pixel shuffles, and the fuse replaces ``conv_last``. At ×4 the upsampler
      carries about half of MSRResNet's operations, so only this scope approaches the patent's savings
      (``docs/complexity.md``).

    SRResNet paper: Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network.
    MS³-Conv: patent CN111353939B; Feng et al., arXiv 2008.00239.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of intermediate features; each branch has ``num_feat // n_scales``.
            Default: 64.
        num_block (int): Block number in the body network. Default: 16.
        upscale (int): Upsampling factor. Support x2, x3 and x4. Default: 4.
        n_scales (int): Number of scales; 1 is exactly MSRResNet (see ``msrresnet_to_ms3srresnet``). Default: 2.
        interaction (str): Cross-scale interaction, 'adjacent' or 'full'. Default: 'adjacent'.
        downsample (str): 'avg', 'max' or 'learned' (see ``MS3Conv``). Default: 'avg'.
        upsample (str): 'nearest', 'bilinear' or 'learned'. Default: 'nearest'.
        scope (str): 'trunk' or 'whole', see above. Default: 'whole'.
        cross_scale_init (float): Scale of the cross-scale kernels' initial weights: 1 initialises them like the
            same-scale kernel, 0 starts the branches without interaction (``scale_cross_scale_init_``). Default: 0
            (``DEFAULT_CROSS_SCALE_INIT``).
    """

    def __init__(self,
                 num_in_ch=3,
                 num_out_ch=3,
                 num_feat=64,
                 num_block=16,
                 upscale=4,
                 n_scales=2,
                 interaction='adjacent',
                 downsample='avg',
                 upsample='nearest',
                 scope='whole',
                 cross_scale_init=DEFAULT_CROSS_SCALE_INIT):
        super().__init__()
        check_ms3_args(n_scales, interaction, downsample, upsample, num_feat=num_feat)
        check_scope(scope)
        check_cross_scale_init(cross_scale_init)
        if upscale not in (2, 3, 4):
            raise ValueError(f'upscale must be one of (2, 3, 4), got {upscale!r}.')
        ms3 = dict(n_scales=n_scales, interaction=interaction, downsample=downsample, upsample=upsample)
        branch_feat = num_feat // n_scales
        self.upscale = upscale
        self.scope = scope
        shuffle = 2 if upscale == 4 else upscale

        # Nothing but the branches reads conv_first, so it produces exactly the branched channels.
        self.conv_first = nn.Conv2d(num_in_ch, n_scales * branch_feat, 3, 1, 1)
        self.split = MS3Split(n_scales, downsample)
        self.body = make_layer(MS3ResidualBlockNoBN, num_block, num_feat=branch_feat, **ms3)
        if scope == 'trunk':
            self.fuse = MS3Fuse(branch_feat, num_feat * shuffle**2, n_scales, upsample=upsample)
            if upscale == 4:
                self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        else:
            self.upconv1 = MS3Conv(branch_feat, branch_feat * shuffle**2, **ms3)
            if upscale == 4:
                self.upconv2 = MS3Conv(branch_feat, branch_feat * 4, **ms3)
            self.conv_hr = MS3Conv(branch_feat, branch_feat, **ms3)
            self.fuse = MS3Fuse(branch_feat, num_out_ch, n_scales, upsample=upsample)
        self.pixel_shuffle = nn.PixelShuffle(shuffle)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)

        # initialization, as MSRResNet's
        default_init_weights([m for m in self.children() if m is not self.body], 0.1)
        scale_cross_scale_init_(self, cross_scale_init)

    def forward(self, x):
        size = x.shape[-2:]
        feat = self.lrelu(self.conv_first(x))
        out = self.body(self.split(feat))
        if self.scope == 'trunk':
            out = self.lrelu(self.pixel_shuffle(self.fuse(out, size)))
            if self.upscale == 4:
                out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
            out = self.conv_last(self.lrelu(self.conv_hr(out)))
        else:
            out = branchwise(lambda t: self.lrelu(self.pixel_shuffle(t)), self.upconv1(out))
            if self.upscale == 4:
                out = branchwise(lambda t: self.lrelu(self.pixel_shuffle(t)), self.upconv2(out))
            out = self.fuse(branchwise(self.lrelu, self.conv_hr(out)), (size[0] * self.upscale, size[1] * self.upscale))
        base = F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
        out += base
        return out


def msrresnet_to_ms3srresnet(state_dict, scope='whole'):
    """Map a BasicSR ``MSRResNet`` state dict to ``MS3SRResNet(n_scales=1, scope=scope)``.

    Residual-block convolutions gain ``.same_scale``; with ``scope='trunk'`` ``upconv1`` → ``fuse.convs.0``; with
    ``scope='whole'`` ``upconv1``/``upconv2``/``conv_hr`` gain ``.same_scale`` and ``conv_last`` → ``fuse.convs.0``.
    """
    check_scope(scope)
    renames = [(r'^body\.(\d+)\.(conv[12])\.', r'body.\1.\2.same_scale.')]
    if scope == 'trunk':
        renames.append((r'^upconv1\.', 'fuse.convs.0.'))
    else:
        renames += [(r'^(upconv1|upconv2|conv_hr)\.', r'\1.same_scale.'), (r'^conv_last\.', 'fuse.convs.0.')]
    return convert_plain_state_dict(state_dict, renames)
