"""How far the learned down-/up-sampling filters of trained MS³ networks moved from their initialisation.

    python scripts/resampling_drift.py experiments/<name>/models/net_g_latest.pth [more checkpoints]

For networks trained with ``downsample: learned`` / ``upsample: learned``: one line per checkpoint with the mean
absolute change per filter tap since initialisation (the 2×2 average for down, the identity after nearest for up;
``msconv_plugin.archs.ms3conv.resampling_drift``). Next to 1, the filters have learned something else; next to 0,
they still compute average pooling and nearest.
"""
import argparse
import sys

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
import torch
from msconv_plugin.archs.ms3conv import resampling_drift
from msconv_plugin.cli import UserError, run
from msconv_plugin.zoo import checkpoint_state_dict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoints', nargs='+', help='BasicSR checkpoints (experiments/<name>/models/*.pth)')
    parser.add_argument('--param-key', choices=('params', 'params_ema'),
                        help='weights to read; default: params_ema when present, else params')
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        state_dict, key = checkpoint_state_dict(torch.load(path, map_location='cpu', weights_only=True),
                                                args.param_key, path)
        drift = resampling_drift(state_dict)
        if drift['down'] is None and drift['up'] is None:
            raise UserError(f'{path} has no learned resampling filters: it was not trained with '
                            'downsample: learned or upsample: learned.')
        down, up = ('–' if drift[kind] is None else f'{drift[kind]:.4f}' for kind in ('down', 'up'))
        print(f'{path} ({key or "state dict"}): mean |change| per tap, down {down}, up {up}')


if __name__ == '__main__':
    sys.exit(run(main))
