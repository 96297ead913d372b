import torch
from basicsr.archs.arch_util import ResidualBlockNoBN, Upsample
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn

from .ms3conv import DEFAULT_CROSS_SCALE_INIT
from .ms3conv import (MS3Conv, MS3Fuse, MS3ResidualBlockNoBN, MS3Split, MS3Upsample, add_scaled, check_cross_scale_init,
                      check_ms3_args, check_scope, convert_plain_state_dict, scale_cross_scale_init_)

# 'trunk' (again) since 2026-12-04; it was 'whole' from 2026-12-01. On EDSR-M x2 with three seeds, 'trunk' lies
# closer to the plain line at equal multiply-adds than 'whole' at 3,000 and 10,000 iterations (by 0.04 and 0.02 dB on
# average, on every seed) and at x4; 'whole' was closer only at x2 after 1,000 iterations, inside the seed spread.
# 'whole' is faster against the full EDSR and lighter in training (docs/when_to_use_ms3.md#which-ms³-settings).
DEFAULT_SCOPE = 'trunk'


@ARCH_REGISTRY.register()
class MS3EDSR(nn.Module):
    """EDSR with MS³-Conv: ``conv_first`` → split (S1), every convolution of the residual blocks → S2 layer.

    ``scope`` decides where the fuse (S3) goes:

    - ``'trunk'`` (default, ``DEFAULT_SCOPE``; also until 2026-12-01): the fuse replaces ``conv_after_body``; the
      long skip, the upsampler and ``conv_last`` stay as in EDSR.
    - ``'whole'`` (the default from 2026-12-01 to 2026-12-04): ``conv_after_body`` and the upsampler's convolutions
      become S2 layers too (long skip and pixel shuffles act branch by branch) and the fuse replaces ``conv_last``;
      this saves most at ×4, where the upsampler carries a large share of the operations.

    EDSR paper: Enhanced Deep Residual Networks for Single Image Super-Resolution (Lim et al., CVPRW 2017).
    MS³-Conv: patent CN111353939B; Feng et al., Exploring Multi-Scale Feature Propagation and Communication for
    Image Super Resolution, arXiv 2008.00239.

    Args:
        num_in_ch (int): Channel number of inputs.
        num_out_ch (int): Channel number of outputs.
        num_feat (int): Channel number of intermediate features; each branch has ``num_feat // n_scales``.
            Default: 64.
        num_block (int): Block number in the trunk network. Default: 16.
        upscale (int): Upsampling factor: 1 (restoration), 2^n or 3. Default: 4.
        res_scale (float): Used to scale the residual in residual block. Default: 1.
        img_range (float): Image range. Default: 255.
        rgb_mean (tuple[float]): Image mean in RGB orders. Default: (0.4488, 0.4371, 0.4040), from DIV2K.
        n_scales (int): Number of scales; 1 is exactly EDSR (see ``edsr_to_ms3edsr``). Default: 2.
        interaction (str): Cross-scale interaction, 'adjacent' or 'full'. Default: 'adjacent'.
        downsample (str): 'avg', 'max' or 'learned' (see ``MS3Conv``). Default: 'avg'.
        upsample (str): 'nearest', 'bilinear' or 'learned', between scales. Default: 'nearest'.
        scope (str): 'trunk' or 'whole', see above. Default: 'trunk'.
        cross_scale_init (float): Scale of the cross-scale kernels' initial weights: 1 initialises them like the
            same-scale kernel, 0 starts the branches without interaction (``scale_cross_scale_init_``). Default: 0
            (``DEFAULT_CROSS_SCALE_INIT``).
        split_after (int): Where the split happens: the first ``split_after`` residual blocks stay EDSR's (full
            resolution, ``n_scales * (num_feat // n_scales)`` channels with scope 'whole', ``num_feat`` with
            'trunk'), the split follows them, and the others are converted. With scope 'whole' the long skip is the
            split of ``conv_first``'s output. Default: 0 (the split right after ``conv_first``).
    """

    def __init__(self,
                 num_in_ch,
                 num_out_ch,
                 num_feat=64,
                 num_block=16,
                 upscale=4,
                 res_scale=1,
                 img_range=255.,
                 rgb_mean=(0.4488, 0.4371, 0.4040),
                 n_scales=2,
                 interaction='adjacent',
                 downsample='avg',
                 upsample='nearest',
                 scope=DEFAULT_SCOPE,
                 cross_scale_init=DEFAULT_CROSS_SCALE_INIT,
                 split_after=0):
        super().__init__()
        check_ms3_args(n_scales, interaction, downsample, upsample, num_feat=num_feat)
        check_scope(scope)
        check_cross_scale_init(cross_scale_init)
        if isinstance(split_after, bool) or not isinstance(split_after, int) or not 0 <= split_after <= num_block:
            raise ValueError(f'split_after must be an integer from 0 to num_block ({num_block}): the number of '
                             f'residual blocks before the split, got {split_after!r}.')
        ms3 = dict(n_scales=n_scales, interaction=interaction, downsample=downsample, upsample=upsample)
        branch_feat = num_feat // n_scales

        self.img_range = img_range
        self.mean = torch.Tensor(rgb_mean).view(1, 3, 1, 1)
        self.upscale = upscale
        self.scope = scope
        self.split_after = split_after

        # With scope 'trunk' the long skip reads all of conv_first's channels; otherwise only the branches do.
        first_feat = num_feat if scope == 'trunk' else n_scales * branch_feat
        self.conv_first = nn.Conv2d(num_in_ch, first_feat, 3, 1, 1)
        self.split = MS3Split(n_scales, downsample)
        self.body = nn.Sequential(
            *[ResidualBlockNoBN(first_feat, res_scale, pytorch_init=True) for _ in range(split_after)],
            *[MS3ResidualBlockNoBN(branch_feat, res_scale, pytorch_init=True, **ms3)
              for _ in range(num_block - split_after)])
        if scope == 'trunk':
            self.fuse = MS3Fuse(branch_feat, num_feat, n_scales, upsample=upsample)
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        else:
            self.conv_after_body = MS3Conv(branch_feat, branch_feat, **ms3)
            self.upsample = MS3Upsample(upscale, branch_feat, **ms3)
            self.fuse = MS3Fuse(branch_feat, num_out_ch, n_scales, upsample=upsample)
        scale_cross_scale_init_(self, cross_scale_init)

    def forward(self, x):
        self.mean = self.mean.type_as(x)
        size = x.shape[-2:]

        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        # The first features are released as soon as they are last used (``x`` rebound), not at the end: the
        # upsampler, where the training step peaks in memory, runs without them.
        k = self.split_after
        if self.scope == 'trunk':
            x = self.fuse(self.body[k:](self.split(self.body[:k](x))), size).add_(x)
            x = self.conv_last(self.upsample(x))
        else:
            skip = self.split(x)
            x = self.body[k:](self.split(self.body[:k](x)) if k else skip)
            x = add_scaled(skip, self.conv_after_body(x))
            del skip  # the split of conv_first's output (a view keeping all of it): not held through the upsampler
            x = self.fuse(self.upsample(x), (size[0] * self.upscale, size[1] * self.upscale))
        x = x / self.img_range + self.mean

        return x


def edsr_to_ms3edsr(state_dict, scope=DEFAULT_SCOPE, split_after=0):
    """Map a BasicSR ``EDSR`` state dict to ``MS3EDSR(n_scales=1, scope=scope, split_after=split_after)`` with the
    same other arguments.

    ``body.<k>.conv<1|2>.*`` → ``body.<k>.conv<1|2>.same_scale.*`` for k ≥ ``split_after``. With ``scope='trunk'``
    ``conv_after_body.*`` → ``fuse.convs.0.*`` and ``conv_first``, ``upsample``, ``conv_last`` keep their names;
    with ``scope='whole'`` ``conv_after_body`` and the upsampler's convolutions gain ``.same_scale`` and
    ``conv_last.*`` → ``fuse.convs.0.*``.
    """
    check_scope(scope)
    # Blocks before the split keep EDSR's names.
    renames = [(r'^body\.(\d+)\.(conv[12])\.',
                lambda m: m.expand(r'body.\1.\2.same_scale.') if int(m[1]) >= split_after else m[0])]
    if scope == 'trunk':
        renames.append((r'^conv_after_body\.', 'fuse.convs.0.'))
    else:
        renames += [(r'^(conv_after_body|upsample\.\d+)\.', r'\1.same_scale.'), (r'^conv_last\.', 'fuse.convs.0.')]
    return convert_plain_state_dict(state_dict, renames)
