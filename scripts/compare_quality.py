"""Equal-budget quality study: a plain network against its MS³ conversions, trained and tested the same way.

    python scripts/compare_quality.py --opt options/train/SunHays80/train_EDSR_Mx2_SunHays80.yml
    python scripts/compare_quality.py --opt options/train/SunHays80/train_CARN_x2_SunHays80.yml --n-scales 2 3
    python scripts/compare_quality.py --opt options/train/SunHays80/train_EDSR_Mx2_SunHays80.yml --n-scales 2 \
        --ablation bilinear:n2:network_g.upsample=bilinear --ablation f46:plain:network_g.num_feat=46

From the plain network's BasicSR training options, each converted network's options are derived by changing only
``network_g`` (type → its MS³ type, plus ``n_scales`` and ``interaction``) and ``name``: data, iterations, batch,
patch size, seed, optimizer and schedule are the same by construction. Every network is trained through
``python -m msconv_plugin.train -opt <options> --auto_resume`` (one subprocess each, so an interrupted study picks
up where it stopped; a network whose ``net_g_latest.pth`` exists is not trained again), then its weights (the EMA
only where the run was long enough for it, see ``tested_param_key``) are tested through ``python -m
msconv_plugin.test`` on Set5, Set14 and BSD68 (``--benchmark-root``; PSNR/SSIM on Y).
Test data follow the task of the training set: bicubic ×s for super-resolution, the training σ with a fixed seed
for Gaussian denoising, a fixed kernel and noise per image for synthetic deblurring.

Written to ``--out`` (default ``docs/quality``): ``<study>.json`` (every number, the budget, the commands),
``<study>.md`` (the table) and ``<study>.png`` (PSNR against multiply-adds, one panel per test set), where
``<study>`` is the plain network's experiment name.

Ablations (``--ablation TAG:BASE:KEY=VALUE[,...]``, repeatable) add networks derived from the plain one (``BASE``
``plain``) or from a converted one (``n2``, ``n3``…) with the listed options changed — an operator, an
initialisation, a learning rate, a narrower plain network of equal multiply-adds — named ``<base name>_<TAG>``; the
study is then written as ``<study>_ablations.*`` and every row's change is printed with it. Networks already
trained or tested are reused, so separate invocations (one ablation each, e.g. run side by side) followed by one
with all of them produce the combined table. Training data must be prepared first (the option file's header
gives the command); test sets are never trained on.
"""
import argparse
import os.path as osp
import sys

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from msconv_plugin.study import DEFAULT_BENCHMARK_ROOT, REPO_ROOT, TEST_SETS, run


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
    return run(parse_args(argv))


if __name__ == '__main__':
    main()
