"""Turn the official multi-scale CARN-M weights into one BasicSR checkpoint per scale.

The official weights (github.com/nmhkahn/CARN-pytorch, ``checkpoint/carn_m.pth``) hold one trunk and three
upsamplers (×2, ×3, ×4). For each requested scale s this writes ``CARN_M_x{s}.pth`` = ``{'params': state_dict}``
with the trunk and the ×s upsampler, which ``CARN(group=4, upscale=s)`` loads with ``strict=True`` (what
``path.pretrain_network_g`` of ``options/test/CARN/test_CARN_M_x{s}.yml`` points to).

Run from the repository root:

    python scripts/convert_carn.py                      # ../shared/data/pretrained/carn_m.pth, scales 2 3 4
    python scripts/convert_carn.py --input carn_m.pth --output-dir carn_weights --scales 4
"""
import argparse
import os
import sys
from os import path as osp

import torch

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from msconv_plugin.cli import run
from msconv_plugin.archs.carn_arch import CARN, official_carn_to_carn

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CARN_M_GROUP = 4


def convert(input_path, output_dir, scales):
    """Write ``CARN_M_x{s}.pth`` for every s in ``scales`` into ``output_dir``; return the written paths."""
    if not osp.isfile(input_path):
        raise FileNotFoundError(f'Official CARN-M weights not found: {input_path} (pass --input; they ship as '
                                'checkpoint/carn_m.pth in github.com/nmhkahn/CARN-pytorch).')
    # The official file was saved from CUDA tensors; it is a plain state dict, so weights_only loading works.
    official = torch.load(input_path, map_location='cpu', weights_only=True)
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for scale in scales:
        state_dict = official_carn_to_carn(official, scale)
        net = CARN(group=CARN_M_GROUP, upscale=scale)
        net.load_state_dict(state_dict, strict=True)  # fails loudly if the file is not CARN-M
        out_path = osp.join(output_dir, f'CARN_M_x{scale}.pth')
        torch.save({'params': net.state_dict()}, out_path)
        written.append(out_path)
        print(f'x{scale}: {sum(p.numel() for p in net.parameters()):,} parameters -> {out_path}')
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--input', default=osp.join(REPO_ROOT, '..', 'shared', 'data', 'pretrained', 'carn_m.pth'),
                        help='official multi-scale CARN-M state dict (default: ../shared/data/pretrained/carn_m.pth '
                        'relative to the repository root)')
    parser.add_argument('--output-dir', default=osp.join(REPO_ROOT, 'experiments', 'pretrained_models'),
                        help='folder for CARN_M_x{s}.pth (default: experiments/pretrained_models/ under the '
                        'repository root, where the test option files look)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], choices=[2, 3, 4],
                        help='scales to write (default: 2 3 4)')
    args = parser.parse_args(argv)
    try:
        convert(osp.normpath(args.input), args.output_dir, args.scales)
    except FileNotFoundError as error:
        parser.exit(1, f'error: {error}\n')


if __name__ == '__main__':
    sys.exit(run(main))
