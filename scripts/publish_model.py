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
import datetime
import hashlib
import json
import os
import os.path as osp
import platform
import re
import sys
import tempfile

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import msconv_plugin  # noqa: F401, E402  (before anything of BasicSR)
from msconv_plugin.cli import run  # noqa: E402
from basicsr.archs import build_network  # noqa: E402
from msconv_plugin.inference import checkpoint_state_dict  # noqa: E402

from compare_quality import (COMPLEXITY_SIZE, REPO_ROOT, TEST_SETS, budget_of, complexity_of, load_options,  # noqa: E402
                             parse_metrics, run_entry, task_of, test_options, tested_param_key, training_wall_time,
                             write_options)

SHARED_BENCHMARK_ROOT = '../shared/data/benchmark'  # as seen from the repository root, where the tests run
SET5_TOLERANCE_DB = 0.01


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def save_weights(state_dict, weights_dir, name, half=True):
    """Save ``{'params': state_dict}`` as ``<weights_dir>/<name>-<sha8>.pth``; return (path, sha256)."""
    state_dict = {k.removeprefix('module.'): (v.half() if half and v.is_floating_point() else v).contiguous()
                  for k, v in state_dict.items()}
    os.makedirs(weights_dir, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(suffix='.pth', dir=weights_dir)
    os.close(fd)
    try:
        torch.save({'params': state_dict}, tmp_path)
        digest = sha256_of(tmp_path)
        for old in os.listdir(weights_dir):  # an earlier publication of the same name
            if re.fullmatch(rf'{re.escape(name)}-[0-9a-f]{{8}}\.pth', old):
                os.remove(osp.join(weights_dir, old))
        path = osp.join(weights_dir, f'{name}-{digest[:8]}.pth')
        os.chmod(tmp_path, 0o644)  # mkstemp makes it private
        os.replace(tmp_path, path)
    finally:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
    return path, digest


def hardware_description():
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            model = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    gpu = f', GPU {torch.cuda.get_device_name(0)}' if torch.cuda.is_available() else ', no GPU'
    return f'{model}, {os.cpu_count()} cores{gpu}'


def rel(path):
    return osp.relpath(osp.abspath(path), REPO_ROOT)


def metrics_from_study(path, experiment):
    with open(path) as f:
        study = json.load(f)
    for row in study['rows']:
        if row['name'] == experiment:
            return row['metrics'], study['command']
    raise ValueError(f'{path} has no results for experiment {experiment!r}.')


def run_test(opt, label, sets):
    opt = dict(opt, datasets={f'test_{i + 1}': d for i, d in enumerate(
        d for d in opt['datasets'].values() if d['name'] in sets)})
    opt_path = write_options(opt, osp.join(REPO_ROOT, 'experiments', 'publish', f'test_{label}.yml'))
    output = run_entry('test', opt_path, osp.join(REPO_ROOT, 'experiments', 'publish', f'test_{label}.log'))
    return parse_metrics(output)


def publish(args):
    train_opt = load_options(args.opt)
    checkpoint = torch.load(args.checkpoint, map_location='cpu', weights_only=True)
    state_dict, source_key = checkpoint_state_dict(checkpoint, args.param_key or tested_param_key(train_opt),
                                                   source=args.checkpoint)
    net_opt = dict(train_opt['network_g'])
    net = build_network(dict(net_opt))
    net.load_state_dict(state_dict, strict=True)

    path, digest = save_weights(state_dict, args.weights_dir, args.name, half=args.half)
    test_opt = test_options(train_opt, rel(path), SHARED_BENCHMARK_ROOT, TEST_SETS, name=f'{args.name}_zoo_test')
    test_opt['path']['param_key_g'] = 'params'
    test_opt_path = osp.join(args.test_options_dir, f'test_{args.name}.yml')
    write_options(test_opt, test_opt_path)
    with open(test_opt_path) as f:
        body = f.read()
    with open(test_opt_path, 'w') as f:
        f.write(f'# {args.name} from the model zoo (docs/model_zoo.md), on Set5, Set14 and BSD68 of ../shared.\n'
                f'# Written by scripts/publish_model.py. Run: python -m msconv_plugin.test -opt {rel(test_opt_path)}\n'
                + body)

    test_command = f'python -m msconv_plugin.test -opt {rel(test_opt_path)}'
    if args.metrics_json:
        metrics, study_command = metrics_from_study(args.metrics_json, train_opt['name'])
        set5 = run_test(test_opt, args.name, ['Set5'])['Set5']['psnr']
        if abs(set5 - metrics['Set5']['psnr']) > SET5_TOLERANCE_DB:
            raise RuntimeError(f"The published file gives Set5 PSNR {set5:.4f} dB, the study {args.metrics_json} "
                               f"recorded {metrics['Set5']['psnr']:.4f} dB for {train_opt['name']}.")
        metrics_note = (f'computed by `{study_command}` (msconv_plugin.test on the `{source_key}` weights of the '
                        f'checkpoint); the published file gives Set5 {set5:.4f} dB through `{test_command}`')
    else:
        metrics = run_test(test_opt, args.name, TEST_SETS)
        metrics_note = f'computed by `{test_command}`'

    exp_dir = osp.dirname(osp.dirname(osp.abspath(args.checkpoint)))
    entry = dict(
        name=args.name,
        file=rel(path),
        sha256=digest,
        size_bytes=osp.getsize(path),
        dtype='float16' if args.half else 'float32',
        task=task_of(train_opt),
        scale=train_opt['scale'],
        sigma=train_opt['datasets']['train'].get('sigma'),
        network_g=net_opt,
        counterpart=args.counterpart,
        params=sum(p.numel() for p in net.parameters()),
        macs=complexity_of(train_opt)['macs'],
        complexity_input=f'1x3x{COMPLEXITY_SIZE}x{COMPLEXITY_SIZE}',
        training=dict(budget_of(train_opt), options=rel(args.opt), experiment=train_opt['name'],
                      weights_key=source_key, wall_time_s=round(training_wall_time(exp_dir)),
                      hardware=args.hardware or hardware_description(), threads=args.threads),
        metrics={s: metrics[s] for s in TEST_SETS},
        metrics_note=metrics_note,
        test_options=rel(test_opt_path),
        published=datetime.date.today().isoformat(),
    )
    zoo = {'models': []}
    if osp.isfile(args.zoo):
        with open(args.zoo) as f:
            zoo = json.load(f)
    zoo['models'] = sorted([m for m in zoo['models'] if m['name'] != args.name] + [entry], key=zoo_order)
    with open(args.zoo, 'w') as f:
        json.dump(zoo, f, indent=2)
        f.write('\n')
    with open(args.zoo_md, 'w') as f:
        f.write(zoo_markdown(zoo))
    return entry


TASKS = ('sr', 'denoise', 'deblur')


def zoo_order(entry):
    """Task, scale, then each plain network followed by its MS³ counterpart."""
    task = TASKS.index(entry['task']) if entry['task'] in TASKS else len(TASKS)
    return task, entry['scale'], entry['name'].removeprefix('MS3'), entry['name'].startswith('MS3')


TASK_LABEL = {'sr': 'SR ×{scale}', 'denoise': 'denoise σ={sigma}', 'deblur': 'deblur (synthetic)'}


def task_label(entry):
    sigma = entry.get('sigma')
    return TASK_LABEL[entry['task']].format(scale=entry['scale'], sigma=sigma)


def zoo_markdown(zoo):
    lines = [
        '# Model zoo',
        '',
        'Generated by `scripts/publish_model.py` from `model_zoo.json` (do not edit by hand). Weights are in '
        '`weights/`, named `<name>-<first 8 hex of sha256>.pth`, holding `{"params": state_dict}` in float16 (half '
        'the size; the networks load them into float32). Each has a test option file under `options/test/zoo/`, and '
        '`python -m msconv_plugin.inference -i <images> -o <folder> --model <name>` applies it to any image.',
        '',
        'Every network was trained on Sun–Hays 80 (80 photographs, `../shared/data/train/SunHays80`) on the CPU of '
        'this project\'s machines, with the budget given per card: far from the DIV2K/GPU budgets of the papers, so '
        'the absolute figures are low; the point is the comparison of each MS³ network with its plain counterpart, '
        'trained the same way. PSNR/SSIM are on the Y channel (border of `scale` pixels cropped for SR). The runs went '
        'two or three at a time, one thread each, on 2 cores: wall times are those of a loaded machine.',
        '',
        '| Name | Task | Network | Params | Mult-adds (1×3×128×128) | Set5 | Set14 | BSD68 | Iterations | '
        'Train time | File |',
        '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ]
    for e in zoo['models']:
        net = e['network_g']
        label = net['type'] + (f" n={net['n_scales']}" if 'n_scales' in net else '')
        lines.append(
            f"| {e['name']} | {task_label(e)} | {label} | {e['params']:,} | {e['macs'] / 1e9:.2f} G | " +
            ' | '.join(f"{e['metrics'][s]['psnr']:.2f} / {e['metrics'][s]['ssim']:.4f}" for s in TEST_SETS) +
            f" | {e['training']['iterations']} | {e['training']['wall_time_s'] / 60:.0f} min | "
            f"[{osp.basename(e['file'])}](../{e['file']}) |")
    lines.append('')
    for e in zoo['models']:
        t = e['training']
        lines += [
            f"## {e['name']}",
            '',
            f"- Network: `{json.dumps(e['network_g'])}`" +
            (f"; {'plain' if 'n_scales' in e['network_g'] else 'MS³'} counterpart (same budget): "
             f"[{e['counterpart']}](#{e['counterpart'].lower()})" if e['counterpart'] else ''),
            f"- Task: {e['task']}, scale ×{e['scale']}",
            f"- Parameters: {e['params']:,}; multiply-adds: {e['macs']:,} ({e['complexity_input']} input, mmengine)",
            f"- Training: `{t['options']}` (experiment `{t['experiment']}`): {t['dataset']} (`{t['dataroot']}`), "
            f"{t['iterations']} iterations, batch {t['batch']}, HR patch {t['gt_size']}, seed {t['seed']}, Adam "
            f"{t['lr']:g} with {t['scheduler']}, EMA {t['ema_decay']} (`{t['weights_key']}` published); wall time "
            f"{t['wall_time_s'] / 60:.1f} min on {t['hardware']}" +
            (f", {t['threads']} thread(s)" if t.get('threads') else ''),
            '- Metrics (PSNR dB / SSIM, Y): ' + '; '.join(
                f"{s} {e['metrics'][s]['psnr']:.2f} / {e['metrics'][s]['ssim']:.4f}" for s in TEST_SETS) +
            f"; {e['metrics_note']}",
            f"- Test: `python -m msconv_plugin.test -opt {e['test_options']}`",
            f"- File: `{e['file']}` ({e['size_bytes'] / 1e6:.1f} MB, {e['dtype']}), sha256 `{e['sha256']}`",
            '',
        ]
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('checkpoint', help='BasicSR network checkpoint (experiments/<name>/models/net_g_latest.pth)')
    parser.add_argument('--opt', required=True, help='the training options of that checkpoint')
    parser.add_argument('--name', required=True, help='zoo name (file name stem), e.g. MS3EDSR_Mx2_SunHays80')
    parser.add_argument('--counterpart', help='zoo name of the plain network trained on the same budget')
    parser.add_argument('--metrics-json', help='compare_quality.py result holding this experiment (see above)')
    parser.add_argument('--param-key', choices=('params', 'params_ema'), help='weights to publish (default: above)')
    parser.add_argument('--weights-dir', default=osp.join(REPO_ROOT, 'weights'))
    parser.add_argument('--zoo', default=osp.join(REPO_ROOT, 'model_zoo.json'))
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
