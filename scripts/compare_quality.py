"""Equal-budget quality study: a plain network against its MS³ conversions, trained and tested the same way.

    python scripts/compare_quality.py --opt options/train/SunHays80/train_EDSR_Mx2_SunHays80.yml
    python scripts/compare_quality.py --opt options/train/SunHays80/train_CARN_x2_SunHays80.yml --n-scales 2 3
    python scripts/compare_quality.py --opt options/train/SunHays80/train_EDSR_Mx2_SunHays80.yml --n-scales 2 \
        --ablation bilinear:n2:network_g.upsample=bilinear --ablation f46:plain:network_g.num_feat=46

What it trains and tests, what it writes and how ablations are named: ``msconv_plugin.study``, the engine this
script calls.
"""
import argparse
import os.path as osp
import sys

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from msconv_plugin.cli import run
from msconv_plugin.study import DEFAULT_BENCHMARK_ROOT, REPO_ROOT, TEST_SETS
from msconv_plugin.study import run as run_study


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--opt', required=True, help="the plain network's BasicSR training options")
    parser.add_argument('--n-scales', type=int, nargs='+', default=[2, 3], help='converted networks to compare')
    parser.add_argument('--interaction', default='adjacent', choices=('adjacent', 'full'))
    parser.add_argument('--benchmark-root', default=DEFAULT_BENCHMARK_ROOT, help='folder holding the test sets')
    parser.add_argument('--sets', nargs='+', default=list(TEST_SETS))
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'docs', 'quality'), help='where results are written')
    parser.add_argument('--iters', type=int, help='override total_iter for every network (smoke runs)')
    parser.add_argument('--retest', action='store_true', help='test every network again, even when unchanged')
    parser.add_argument('--threads', type=int, help='OMP threads per training/test process (default: torch decides)')
    parser.add_argument(
        '--ablation', action='append', default=[], metavar='TAG:BASE:KEY=VALUE[,KEY=VALUE]',
        help="also train and test a variant of the plain network (BASE 'plain') or of a converted one ('n2', 'n3'…) "
        "with options changed, named <base name>_<TAG>; repeatable. Results go to <study>_ablations.*. Example: "
        "--ablation bilinear:n2:network_g.upsample=bilinear --ablation f46:plain:network_g.num_feat=46")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None):
    return run_study(parse_args(argv))


if __name__ == '__main__':
    sys.exit(run(main))
