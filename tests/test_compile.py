"""``torch.compile`` of every MS³ network gives the eager result, also when the input size changes.

At the second size torch.compile recompiles with dynamic (symbolic) sizes, where the split's padding arithmetic
once crashed. Inductor generates C++ on the CPU, so a C++ compiler must be installed; compiling takes seconds to
a minute per network, hence ``slow``.
"""
import shutil

import pytest
import torch
from basicsr.archs import build_network

TINY = {
    'MS3EDSR': dict(num_feat=8, num_block=1, upscale=2),
    'MS3SRResNet': dict(num_feat=8, num_block=1, upscale=2),
    'MS3RRDBNet': dict(scale=2, num_feat=8, num_block=1, num_grow_ch=4),
    'MS3CARN': dict(num_feat=16, upscale=2),
}
# Odd sizes make the split pad; RRDBNet x2 pixel-unshuffles by 2 first, so its sizes are even (odd after that).
SIZES = {'MS3RRDBNet': [(16, 12), (26, 14)]}
# Every network at n=2 (n=3's split and fuse are the same code with one more branch; the ONNX and oracle tests
# cover them): each case compiles twice, up to a minute or two on two CPU cores.
# One more: learned resampling filters (depthwise convolutions between the kernels; the reference S2 path).
CASES = [(net_type, 2, {}) for net_type in TINY] + [('MS3EDSR', 2, dict(downsample='learned', upsample='learned'))]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('c++') is None and shutil.which('g++') is None,
                    reason='torch.compile (inductor) needs a C++ compiler on the CPU')
@pytest.mark.parametrize('net_type,n_scales,options', CASES)
def test_compiled_network_matches_eager_at_several_sizes(net_type, n_scales, options):
    torch.manual_seed(0)
    net = build_network(
        dict(type=net_type, num_in_ch=3, num_out_ch=3, n_scales=n_scales, **TINY[net_type], **options)).eval()
    compiled = torch.compile(net)
    for size in SIZES.get(net_type, [(16, 12), (13, 7)]):  # 2nd size: recompiled with dynamic sizes
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            expected = net(x)
            # float32 through a dozen layers; the compiler fuses element-wise work and may round differently
            torch.testing.assert_close(compiled(x), expected, rtol=1e-4, atol=1e-5)
