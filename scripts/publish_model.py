"""Publish a trained generator: a checksummed weight file, a model-card entry, and a test option file.

    python scripts/publish_model.py experiments/MS3EDSR_Mx2_f64b16_SunHays80_3k_B8G1_n2/models/net_g_latest.pth \\
        --opt options/train/SunHays80/train_MS3EDSR_Mx2_SunHays80.yml \\
        --name MS3EDSR_Mx2_SunHays80 --counterpart EDSR_Mx2_SunHays80 \\
        --metrics-json docs/quality/EDSR_Mx2_f64b16_SunHays80_3k_B8G1.json

1. Keeps only the generator's weights (``--param-key``; default: ``params_ema`` when the run was long enough for
   its EMA to forget the random initialisation, else ``params``, as ``compare_quality.tested_param_key``), checks that
   they load strictly into the network of ``--opt``, and saves ``{'params': state_dict}`` (float16 with ``--half``,
   the default: half the size; networks load them into float32) as ``<weights-dir>/<name>-<first 8 hex of
   sha256>.pth``, the torch.hub naming BasicSR's released models use. A previous file of the same name is removed.
2. Writes ``options/test/zoo/test_<name>.yml``: the published file on Set5, Set14 and BSD68 (``../shared``), the
   degradation of the training data (see ``scripts/compare_quality.py``), PSNR/SSIM on Y.
3. Metrics: with ``--metrics-json`` (a ``compare_quality.py`` result holding this experiment), its Set5/Set14/BSD68
   figures are reused after the published file is run through ``python -m msconv_plugin.test`` on Set5 and found to
   give the same PSNR (within 0.01 dB); without it, the test option file is run on every set.
4. Adds (or replaces) the entry ``name`` in ``model_zoo.json`` (network and arguments, task and scale, training data
   and budget with wall time and hardware, metrics, parameters and multiply-adds, sha256) and rewrites
   ``docs/model_zoo.md`` from it.
"""
import argparse
import json
import os.path as osp
import sys

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from msconv_plugin.cli import run
from msconv_plugin.study import REPO_ROOT
from msconv_plugin.zoo import DEFAULT_ZOO, PACKAGE_DIR, publish


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='BasicSR network checkpoint (experiments/<name>/models/net_g_latest.pth)')
    parser.add_argument('--opt', required=True, help='the training options of that checkpoint')
    parser.add_argument('--name', required=True, help='zoo name (file name stem), e.g. MS3EDSR_Mx2_SunHays80')
    parser.add_argument('--counterpart', help='zoo name of the plain network trained on the same budget')
    parser.add_argument('--metrics-json', help='compare_quality.py result holding this experiment (see above)')
    parser.add_argument('--param-key', choices=('params', 'params_ema'), help='weights to publish (default: above)')
    parser.add_argument('--weights-dir', default=osp.join(PACKAGE_DIR, 'weights'))
    parser.add_argument('--zoo', default=DEFAULT_ZOO)
    parser.add_argument('--zoo-md', default=osp.join(REPO_ROOT, 'docs', 'model_zoo.md'))
    parser.add_argument('--test-options-dir', default=osp.join(REPO_ROOT, 'options', 'test', 'zoo'))
    parser.add_argument('--full-precision', dest='half', action='store_false', help='store float32 weights')
    parser.add_argument('--hardware', help='training hardware for the card (default: this machine)')
    parser.add_argument('--threads', type=int, help='threads the training ran with, for the card')
    args = parser.parse_args(argv)
    if args.name != osp.basename(args.name) or '-' in args.name:
        parser.error('--name must be a plain file name stem without "-" (the hash follows the last "-").')
    return args


def main(argv=None):
    entry = publish(parse_args(argv))
    print(json.dumps(entry, indent=2))
    return entry


if __name__ == '__main__':
    sys.exit(run(main))
