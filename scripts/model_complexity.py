"""Parameters and multiply-adds of the plain networks and their MS³ conversions (mmengine's FLOP counter).

    python scripts/model_complexity.py                      # every network, x4 and x2, 128x128 LR, markdown
    python scripts/model_complexity.py --json out.json      # the same, also as JSON
    python scripts/model_complexity.py --networks MSRResNet --scales 4 --n-scales 2 3

mmengine counts the multiply-accumulates of convolutions and linear layers ("flops" in its API, one per
multiply-add). It leaves out pooling, interpolation, pixel (un)shuffle, element-wise additions/multiplications and
activations; each table lists the operators it saw and did not count.
"""
import argparse
import json
import sys

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from msconv_plugin.cli import run
from msconv_plugin.complexity import NETWORKS, markdown, rows_for


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--networks', nargs='+', default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument('--scales', nargs='+', type=int, default=[4, 2])
    parser.add_argument('--n-scales', nargs='+', type=int, default=[2, 3])
    parser.add_argument('--interactions', nargs='+', default=['adjacent', 'full'], choices=['adjacent', 'full'])
    parser.add_argument('--size', type=int, default=128, help='height and width of the LR input')
    parser.add_argument('--json', help='also write the rows as JSON to this path')
    args = parser.parse_args(argv)

    rows = []
    for name in args.networks:
        for scale in args.scales if NETWORKS[name][3] else [1]:
            rows += rows_for(name, scale, args.size, args.n_scales, args.interactions)
            print(f'measured {name} x{scale}', file=sys.stderr, flush=True)
    print(markdown(rows, args.size))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(input_size=[3, args.size, args.size], counter='mmengine.analysis.FlopAnalyzer', rows=rows),
                      f, indent=1)


if __name__ == '__main__':
    sys.exit(run(main))
