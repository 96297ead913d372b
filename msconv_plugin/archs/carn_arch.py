import re

import torch
from basicsr.archs.arch_util import ResidualBlockNoBN
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn
from torch.nn import functional as F

from .ms3conv import convert_plain_state_dict

# Mean of DIV2K in RGB, [0, 1]: the values CARN's official weights were trained with.
CARN_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class MeanShift(nn.Conv2d):
    """Frozen 1×1 convolution adding ``sign * rgb_mean`` to an RGB image, as in the official CARN.

    It is a convolution (identity weight, the mean as bias) rather than a constant because the official weights
    contain it: they map onto ``CARN`` key for key (``official_carn_to_carn``), and the parameter count is the
    official one. Its parameters do not require gradients, so training leaves them as they are.

    Args:
        sign (int): -1 subtracts the mean, 1 adds it back.
        rgb_mean (tuple[float]): Image mean in RGB order, [0, 1]. Default: ``CARN_RGB_MEAN``.
    """

    def __init__(self, sign, rgb_mean=CARN_RGB_MEAN):
        super().__init__(3, 3, 1)
        self.requires_grad_(False)
        self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        self.bias.copy_(sign * torch.tensor(rgb_mean))


class ResidualBlock(ResidualBlockNoBN):
    """CARN's residual block: BasicSR's ``ResidualBlockNoBN`` (PyTorch default init) with a ReLU after the addition.

    Args:
        num_feat (int): Channel number of intermediate features. Default: 64.
    """

    def __init__(self, num_feat=64):
        super().__init__(num_feat, pytorch_init=True)

    def forward(self, x):
        return F.relu(super().forward(x))


class EResidualBlock(nn.Module):
    """CARN-M's efficient residual block: two 3×3 group convolutions, then a 1×1 convolution (pointwise), each but
    the last followed by a ReLU, a residual addition and a last ReLU.

    Args:
        num_feat (int): Channel number of intermediate features. Default: 64.
        group (int): Groups of the two 3×3 convolutions. Default: 4.
    """

    def __init__(self, num_feat=64, group=4):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, groups=group)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, groups=group)
        self.conv3 = nn.Conv2d(num_feat, num_feat, 1)

    def forward(self, x):
        out = self.conv3(F.relu(self.conv2(F.relu(self.conv1(x)))))
        return F.relu(out + x)


def cascade(x, blocks, convs):
    """CARN's cascading connections.

    After block k, the cascade input and the outputs of blocks 1…k are concatenated, and ``convs[k]`` (a 1×1
    convolution, followed by a ReLU) maps the concatenation back to the input's width; that feeds block k+1.
    """
    concat = x
    for block, conv in zip(blocks, convs):
        concat = torch.cat([concat, block(x)], 1)
        x = F.relu(conv(concat))
    return x


class CascadingBlock(nn.Module):
    """CARN's cascading block: three residual blocks with cascading 1×1 convolutions ``c1``, ``c2``, ``c3``.

    Args:
        num_feat (int): Channel number of intermediate features. Default: 64.
        group (int): 1: three residual blocks (CARN). >1: ONE efficient residual block with ``group`` groups, used
            three times (CARN-M). Default: 1.
    """

    def __init__(self, num_feat=64, group=1):
        super().__init__()
        self.shared = group > 1
        if self.shared:
            self.b1 = EResidualBlock(num_feat, group)
        else:
            self.b1, self.b2, self.b3 = (ResidualBlock(num_feat) for _ in range(3))
        self.c1, self.c2, self.c3 = (nn.Conv2d(k * num_feat, num_feat, 1) for k in (2, 3, 4))

    def forward(self, x):
        blocks = (self.b1, ) * 3 if self.shared else (self.b1, self.b2, self.b3)
        return cascade(x, blocks, (self.c1, self.c2, self.c3))


class CARNUpsample(nn.Sequential):
    """CARN's upsampler: (3×3 convolution, ReLU, pixel shuffle ×2) per factor 2, or one such step with ×3.

    Unlike BasicSR's ``Upsample``, each convolution is followed by a ReLU and may be a group convolution.

    Args:
        scale (int): Scale factor. Supported scales: 2^n and 3.
        num_feat (int): Channel number of intermediate features.
        group (int): Groups of the convolutions. Default: 1.
    """

    def __init__(self, scale, num_feat, group=1):
        if scale == 3:
            factors = [3]
        elif scale >= 2 and scale & (scale - 1) == 0:
            factors = [2] * (scale.bit_length() - 1)
        else:
            raise ValueError(f'upscale {scale} is not supported. Supported scales: 2^n and 3.')
        m = []
        for factor in factors:
            m += [nn.Conv2d(num_feat, factor**2 * num_feat, 3, 1, 1, groups=group), nn.ReLU(inplace=True)]
            m.append(nn.PixelShuffle(factor))
        super().__init__(*m)


def check_carn_args(num_in_ch, num_out_ch, num_feat, group):
    """Raise ``ValueError`` naming the argument when CARN's arguments do not fit together."""
    if num_in_ch != 3 or num_out_ch != 3:
        raise ValueError(f'CARN shifts an RGB mean: num_in_ch and num_out_ch must be 3, got {num_in_ch} and '
                         f'{num_out_ch}.')
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ValueError(f'group must be an integer >= 1, got {group!r}.')
    if num_feat % group != 0:
        raise ValueError(f'num_feat ({num_feat}) must be a multiple of group ({group}).')


@ARCH_REGISTRY.register()
class CARN(nn.Module):
    """CARN and CARN-M.

    Paper: Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network (Ahn, Kang, Sohn,
    ECCV 2018). Follows the official implementation (github.com/nmhkahn/CARN-pytorch) as a single-scale network;
    ``scripts/convert_carn.py`` turns the official multi-scale weights into one checkpoint per scale.

    Input and output are RGB in [0, 1]; the network subtracts the DIV2K mean first and adds it back last.

    Args:
        num_in_ch (int): Channel number of inputs; must be 3 (RGB). Default: 3.
        num_out_ch (int): Channel number of outputs; must be 3 (RGB). Default: 3.
        num_feat (int): Channel number of intermediate features; a multiple of ``group``. Default: 64.
        upscale (int): Upsampling factor: 2^n or 3 (the official weights: 2, 3 and 4). Default: 4.
        group (int): 1 builds CARN. A larger value builds CARN-M: group convolutions with ``group`` groups in the
            efficient residual blocks and the upsampler, and one efficient residual block shared by the three steps
            of each cascading block (the paper's CARN-M uses 4). Default: 1.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, upscale=4, group=1):
        super().__init__()
        check_carn_args(num_in_ch, num_out_ch, num_feat, group)
        self.sub_mean = MeanShift(-1)
        self.add_mean = MeanShift(1)

        self.entry = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.b1, self.b2, self.b3 = (CascadingBlock(num_feat, group) for _ in range(3))
        self.c1, self.c2, self.c3 = (nn.Conv2d(k * num_feat, num_feat, 1) for k in (2, 3, 4))
        self.upsample = CARNUpsample(upscale, num_feat, group)
        self.exit = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x):
        x = self.entry(self.sub_mean(x))
        x = cascade(x, (self.b1, self.b2, self.b3), (self.c1, self.c2, self.c3))
        return self.add_mean(self.exit(self.upsample(x)))


def official_carn_to_carn(state_dict, upscale):
    """Map an official CARN or CARN-M state dict (github.com/nmhkahn/CARN-pytorch) to ``CARN(upscale=upscale)``.

    Keeps the trunk and the ×``upscale`` upsampler of a multi-scale state dict (``upsample.up<2|3|4>.*``; a
    single-scale one has ``upsample.up.*``), drops the other scales' upsamplers and renames:
    ``<sub|add>_mean.shifter.*`` → ``<sub|add>_mean.*``; ``upsample.up<upscale>.body.*`` → ``upsample.*``;
    cascading convolutions ``c<k>.body.0.*`` → ``c<k>.*``; residual blocks' ``body.<0|2|4>.*`` → ``conv<1|2|3>.*``.
    ``entry`` and ``exit`` keep their names.
    """
    upsampler = re.compile(rf'^upsample\.up({upscale})?\.')
    kept = {k: v for k, v in state_dict.items() if not k.startswith('upsample.') or upsampler.match(k)}
    return convert_plain_state_dict(kept, [
        (r'^(sub|add)_mean\.shifter\.', r'\1_mean.'),
        (r'^upsample\.up\d?\.body\.', 'upsample.'),
        (r'(c\d)\.body\.0\.', r'\1.'),
        (r'\.body\.0\.', '.conv1.'),
        (r'\.body\.2\.', '.conv2.'),
        (r'\.body\.4\.', '.conv3.'),
    ])
