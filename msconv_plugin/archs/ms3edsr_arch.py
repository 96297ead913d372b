import torch
from basicsr.archs.arch_util import Upsample, make_layer
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn

from .ms3conv import MS3Fuse, MS3ResidualBlockNoBN, MS3Split, check_ms3_args, convert_plain_state_dict


@ARCH_REGISTRY.register()
class MS3EDSR(nn.Module):
    """EDSR with MS³-Conv: ``conv_first`` → split (S1), every convolution of the residual blocks → S2 layer,
    ``conv_after_body`` → fuse (S3). The long skip, the upsampler and ``conv_last`` stay as in EDSR.

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
        downsample (str): 'avg' or 'max'. Default: 'avg'.
        upsample (str): 'nearest' or 'bilinear' (between scales; the image upsampler is EDSR's). Default: 'nearest'.
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
                 upsample='nearest'):
        super().__init__()
        check_ms3_args(n_scales, interaction, downsample, upsample, num_feat=num_feat)
        ms3 = dict(n_scales=n_scales, interaction=interaction, downsample=downsample, upsample=upsample)
        branch_feat = num_feat // n_scales

        self.img_range = img_range
        self.mean = torch.Tensor(rgb_mean).view(1, 3, 1, 1)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.split = MS3Split(n_scales, downsample)
        self.body = make_layer(MS3ResidualBlockNoBN, num_block, num_feat=branch_feat, res_scale=res_scale, **ms3)
        self.fuse = MS3Fuse(branch_feat, num_feat, n_scales, upsample=upsample)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x):
        self.mean = self.mean.type_as(x)

        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        res = self.fuse(self.body(self.split(x)), x.shape[-2:])
        res += x

        x = self.conv_last(self.upsample(res))
        x = x / self.img_range + self.mean

        return x


def edsr_to_ms3edsr(state_dict):
    """Map a BasicSR ``EDSR`` state dict to ``MS3EDSR(n_scales=1)`` with the same other arguments.

    ``body.<k>.conv<1|2>.*`` → ``body.<k>.conv<1|2>.same_scale.*`` and ``conv_after_body.*`` → ``fuse.convs.0.*``;
    ``conv_first``, ``upsample`` and ``conv_last`` keep their names.
    """
    return convert_plain_state_dict(state_dict, [
        (r'^body\.(\d+)\.(conv[12])\.', r'body.\1.\2.same_scale.'),
        (r'^conv_after_body\.', 'fuse.convs.0.'),
    ])
