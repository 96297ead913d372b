"""The equal-budget quality study: a plain network against its MS³ conversions, trained and tested the same way.

``scripts/compare_quality.py`` is its command line; the functions (``derive_options``, ``derive_ablation``,
``run_entry``, ``test_options``, ``parse_metrics``, ``budget_of``, ``complexity_of``, the metrics cache of
``study``) are reusable by other studies, the model zoo's publication (``msconv_plugin.zoo``) and the demo.

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
import copy
import datetime
import inspect
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

import yaml
from basicsr.utils.registry import ARCH_REGISTRY

from .archs.ms3rrdbnet_arch import unshuffle_factor
from .complexity import MS3_TYPES, measure
from .data.data_util import level_range
from .extras import require

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_BENCHMARK_ROOT = osp.join(REPO_ROOT, '..', 'shared', 'data', 'benchmark')

TEST_SETS = ('Set5', 'Set14', 'BSD68')
COMPLEXITY_SIZE = 128  # LR side of the input the multiply-adds are counted for (as docs/complexity.md)

# Training-only keys of a dataset's options, dropped when the training set's degradation is reused for testing.
TRAIN_ONLY_KEYS = ('name', 'dataroot_gt', 'dataroot_lq', 'filename_tmpl', 'meta_info_file', 'io_backend', 'gt_size',
                   'use_hflip', 'use_rot', 'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio',
                   'prefetch_mode', 'noise_range', 'phase', 'scale')
METRIC_LINE = re.compile(r'Validation (\S+)\s*\n\s*# (psnr|ssim): ([-\d.]+)(?:.*\n\s*# (psnr|ssim): ([-\d.]+))?')


def load_options(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def write_options(opt, path):
    """Write BasicSR options ``opt`` as YAML to ``path`` (its folder created); return ``path``."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


# Network options whose defaults have changed: written out wherever a network's options are recorded (zoo cards,
# study members), so that a record still says what its weights were trained with after a default changes again.
RECORDED_SETTINGS = ('cross_scale_init', 'scope')


def recorded_network_options(network_g):
    """``network_g`` with every ``RECORDED_SETTINGS`` its network takes written out (the default when not given)."""
    net_opt = dict(network_g)
    parameters = inspect.signature(ARCH_REGISTRY.get(net_opt['type'])).parameters
    for key in RECORDED_SETTINGS:
        if key in parameters:
            net_opt.setdefault(key, parameters[key].default)
    return net_opt


def without_spelled_out_defaults(network_type, options):
    """``options`` of a ``network_type`` network without the entries that merely spell out a default which has never
    changed (``upsample: nearest`` is what leaving it out gives). ``RECORDED_SETTINGS`` stay: their defaults have
    changed, so only what a record says, written out or not, tells what a network was trained with."""
    try:
        parameters = inspect.signature(ARCH_REGISTRY.get(network_type)).parameters
    except KeyError:  # not a registered network: nothing is known of its defaults
        return dict(options)
    return {k: v for k, v in options.items()
            if k in RECORDED_SETTINGS or k not in parameters or parameters[k].default != v}


def derive_options(plain_opt, n_scales, interaction='adjacent'):
    """The converted network's training options: ``plain_opt`` with ``network_g`` and ``name`` changed, nothing else.

    ``name`` becomes ``<MS3 type><rest of the plain name>_n<n_scales>`` (``_<interaction>`` added for ``full``).
    """
    plain_type = plain_opt['network_g']['type']
    if plain_type not in MS3_TYPES:
        raise ValueError(f'No MS³ conversion for network type {plain_type!r}; known: {", ".join(MS3_TYPES)}.')
    if not plain_opt['name'].startswith(plain_type):
        raise ValueError(f"The plain experiment name must start with its network type {plain_type!r} (the converted "
                         f"name replaces it), got {plain_opt['name']!r}.")
    opt = copy.deepcopy(plain_opt)
    opt['network_g'].update(type=MS3_TYPES[plain_type], n_scales=n_scales, interaction=interaction)
    suffix = f'_n{n_scales}' + ('' if interaction == 'adjacent' else f'_{interaction}')
    opt['name'] = MS3_TYPES[plain_type] + plain_opt['name'][len(plain_type):] + suffix
    return opt


def parse_ablation(text):
    """``'<tag>:<base>:<key.path>=<value>[,<key.path>=<value>...]'`` → ``(tag, base, {key.path: value})``.

    ``base`` is ``plain`` or ``n<k>`` (the converted network with ``n_scales`` k); values are read as YAML (numbers
    such as ``4e-4`` as numbers).
    """
    parts = text.split(':', 2)
    if len(parts) != 3 or not re.fullmatch(r'[A-Za-z0-9.+-]+', parts[0]) or not re.fullmatch(r'plain|n\d+', parts[1]):
        raise ValueError(f"An ablation is '<tag>:<plain|n2|n3..>:<key.path>=<value>[,...]' with a tag of letters, "
                         f"digits, '.', '+' or '-', got {text!r}.")
    tag, base, body = parts
    return tag, base, parse_overrides(body, f'ablation {text!r}')


def parse_overrides(text, what='--set'):
    """``'<key.path>=<value>[,<key.path>=<value>...]'`` → ``{key.path: value}``, values read as YAML (numbers such
    as ``4e-4`` as numbers); ``what`` names the argument in errors."""
    overrides = {}
    for item in filter(None, text.split(',')):
        key, sep, raw = item.partition('=')
        if not sep or not key:
            raise ValueError(f'Override {item!r} of {what} is not <key.path>=<value>.')
        value = yaml.safe_load(raw)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        overrides[key] = value
    if not overrides:
        raise ValueError(f'The {what} changes nothing.')
    return overrides


def derive_ablation(base_opt, tag, overrides):
    """``base_opt`` with ``overrides`` (dotted paths into the options; every key must exist except in
    ``network_g``, where a new argument may be set) and ``name`` ``<base name>_<tag>``."""
    opt = copy.deepcopy(base_opt)
    for path, value in overrides.items():
        keys = path.split('.')
        node = opt
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                raise KeyError(f'{path}: no section {key!r} in the options of {base_opt["name"]}.')
            node = node[key]
        if keys[-1] not in node and keys[0] != 'network_g':
            raise KeyError(f'{path}: no option {keys[-1]!r} in the options of {base_opt["name"]}.')
        node[keys[-1]] = value
    opt['name'] = f"{base_opt['name']}_{tag}"
    return opt


def task_of(opt):
    """'sr', 'denoise' or 'deblur', from the training dataset type."""
    dataset_type = opt['datasets']['train']['type']
    if dataset_type == 'GaussianNoiseDataset':
        return 'denoise'
    if dataset_type == 'SyntheticBlurDataset':
        return 'deblur'
    return 'sr'


def degradation_of(opt):
    """What sets a restoration recipe apart beyond its task, in a few words: the noise level of a denoising recipe
    ('σ=25', or 'σ=15–50' for a blind range); '' for the other tasks (their kernels and scales are recorded
    elsewhere)."""
    if task_of(opt) != 'denoise':
        return ''
    lo, hi = level_range(opt['datasets']['train'], 'sigma', 'sigma_range', required=True)
    return f'σ={lo:g}' if lo == hi else f'σ={lo:g}–{hi:g}'


def test_dataset_options(train_opt, set_name, benchmark_root):
    """BasicSR options of one test set, degraded as the training data (fixed seeds: the same inputs on every run)."""
    folder = osp.join(benchmark_root, set_name)
    task = task_of(train_opt)
    if task == 'sr':
        opt = dict(name=set_name, type='BicubicSRDataset', dataroot_gt=folder, io_backend=dict(type='disk'))
        # RRDBNet at x2 pixel-unshuffles its input: every member of a family is tested on HR cropped alike
        unshuffle = unshuffle_factor(train_opt['network_g']['type'], train_opt['scale'])
        return dict(opt, mod_crop=train_opt['scale'] * unshuffle) if unshuffle > 1 else opt
    opt = {k: v for k, v in train_opt['datasets']['train'].items() if k not in TRAIN_ONLY_KEYS}
    opt.update(name=set_name, dataroot_gt=folder, io_backend=dict(type='disk'), seed=0)
    if task == 'deblur':
        opt['noise_sigma'] = 2.55  # 1% noise on every test image, inside the training range
    return opt


def tested_param_key(opt):
    """Which weights of a BasicSR checkpoint to test and publish: ``params_ema`` when the run kept an EMA long
    enough for the random initialisation to have left it, else ``params``.

    BasicSR's EMA starts from the initial network: after ``total_iter`` iterations its weights still hold
    ``ema_decay ** total_iter`` of the random initialisation — 5% for 0.999 over 3,000 iterations, enough to cost
    Set5 ×2 about 2.7 dB (EDSR-M) and 4.7 dB (CARN) in our runs; negligible over BasicSR's 300k-iteration recipes.
    Below 0.1% the EMA is used. Every network of a study uses the same rule, hence the same key.
    """
    decay = opt['train'].get('ema_decay', 0)
    return 'params_ema' if decay > 0 and decay**opt['train']['total_iter'] < 1e-3 else 'params'


def test_options(train_opt, model_path, benchmark_root, sets=TEST_SETS, name=None):
    """Options for ``msconv_plugin.test``: the weights of ``model_path`` (``tested_param_key``) on ``sets``,
    PSNR/SSIM on Y."""
    scale = train_opt['scale']
    crop = scale if scale > 1 else 0
    metrics = dict(psnr=dict(type='calculate_psnr', crop_border=crop, test_y_channel=True),
                   ssim=dict(type='calculate_ssim', crop_border=crop, test_y_channel=True))
    return dict(
        name=name or f"{train_opt['name']}_test",
        model_type=train_opt['model_type'],
        scale=scale,
        num_gpu=train_opt.get('num_gpu', 'auto'),
        manual_seed=0,
        datasets={f'test_{i + 1}': test_dataset_options(train_opt, s, benchmark_root) for i, s in enumerate(sets)},
        network_g=train_opt['network_g'],
        path=dict(pretrain_network_g=model_path, param_key_g=tested_param_key(train_opt), strict_load_g=True),
        val=dict(save_img=False, suffix=None, metrics=metrics))


def say(message):
    """Print one line in a single write: the members of a study run in threads (``--jobs``), and ``print`` writes
    the text and its newline separately, so two members' lines could run together."""
    print(message + '\n', end='', flush=True)


def run_entry(entry, opt_path, log_path, extra=(), threads=None, cwd=REPO_ROOT, echo=None):
    """``python -m msconv_plugin.<entry> -opt <opt_path> [extra]`` in ``cwd`` (default: the repository root); its
    output goes to ``log_path``, and each line matching the regular expression ``echo`` (any line for ``'.'``) is
    printed as it comes. Returns the output; raises with the log's tail on failure.
    """
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    # The subprocess may start elsewhere: make it import this copy of the plugin even where it is not installed.
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [REPO_ROOT, env.get('PYTHONPATH')]))
    if threads:
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    cmd = [sys.executable, '-m', f'msconv_plugin.{entry}', '-opt', opt_path, *extra]
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    lines = []
    with open(log_path, 'w') as log, subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            log.write(line)
            lines.append(line)
            if echo and re.search(echo, line):
                say('    ' + line.rstrip())
    output = ''.join(lines)
    if proc.returncode != 0:
        tail = '\n'.join(output.splitlines()[-30:])
        raise RuntimeError(f'{" ".join(cmd)} failed with exit code {proc.returncode}; end of {log_path}:\n{tail}')
    return output


def parse_metrics(output):
    """{set name: {'psnr': .., 'ssim': ..}} from the log of BasicSR's test pipeline."""
    results = {}
    for match in METRIC_LINE.finditer(output):
        values = results.setdefault(match.group(1), {})
        values[match.group(2)] = float(match.group(3))
        if match.group(4):
            values[match.group(4)] = float(match.group(5))
    return results


LOG_TIME = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ INFO: ', re.M)


def training_wall_time(exp_dir):
    """Seconds between the first and the last line of each BasicSR training log in ``exp_dir``, summed (a resumed
    run writes one log per start)."""
    total = 0.
    for name in sorted(os.listdir(exp_dir)):
        if name.startswith('train_') and name.endswith('.log'):
            with open(osp.join(exp_dir, name)) as f:
                stamps = LOG_TIME.findall(f.read())
            if len(stamps) >= 2:
                first, last = (datetime.datetime.strptime(s, '%Y-%m-%d %H:%M:%S') for s in (stamps[0], stamps[-1]))
                total += (last - first).total_seconds()
    return total


def budget_of(opt):
    train_set = opt['datasets']['train']
    return dict(dataset=train_set['name'], dataroot=train_set['dataroot_gt'], iterations=opt['train']['total_iter'],
                batch=train_set['batch_size_per_gpu'], gt_size=train_set['gt_size'], seed=opt['manual_seed'],
                lr=opt['train']['optim_g']['lr'], scheduler=opt['train']['scheduler']['type'],
                ema_decay=opt['train'].get('ema_decay', 0), tested_weights=tested_param_key(opt))


def complexity_of(opt):
    net = dict(opt['network_g'])
    net_type = net.pop('type')
    counts = measure(net_type, net, COMPLEXITY_SIZE)
    return dict(params=counts['params'], macs=counts['macs'])


def check_training_data(opt, opt_path):
    train_set = opt['datasets']['train']
    missing = [train_set[k] for k in ('dataroot_gt', 'dataroot_lq') if k in train_set and not
               osp.isdir(osp.join(REPO_ROOT, train_set[k]))]
    if missing:
        raise FileNotFoundError(f'Training data not found: {", ".join(missing)}. Prepare it with the command in the '
                                f'header of {opt_path} (e.g. python scripts/prepare_dataset.py sr '
                                '../shared/data/train/SunHays80 --scales 2 3 4 --crop-size 240 --step 180 '
                                '--out-root datasets/SunHays80).')


def check_study_inputs(plain, opt_path, benchmark_root, sets, training=True):
    """The training data of ``plain`` (read from ``opt_path``; only when ``training``) and the test sets exist, or an
    error says what to do."""
    if training:
        check_training_data(plain, opt_path)
    for set_name in sets:
        if not osp.isdir(osp.join(benchmark_root, set_name)):
            raise FileNotFoundError(f'Test set {set_name} not found in {benchmark_root} (--benchmark-root).')


def train_and_test(opt, work_dir, benchmark_root, sets=TEST_SETS, threads=None, retest=False):
    """Train one network of a study through ``python -m msconv_plugin.train --auto_resume`` (not again when its
    ``net_g_latest.pth`` exists), test it through ``python -m msconv_plugin.test`` on ``sets`` (not again when the
    model and the test options are unchanged, unless ``retest``); options, logs and metrics go to ``work_dir``.
    Returns its row: name, type, n_scales, network_g, budget, params, macs, metrics, wall times, train command."""
    name = opt['name']
    exp_dir = osp.join(REPO_ROOT, 'experiments', name)
    model_path = osp.join(exp_dir, 'models', 'net_g_latest.pth')
    opt_path = write_options(opt, osp.join(work_dir, 'options', f'train_{name}.yml'))
    train_cmd = f'python -m msconv_plugin.train -opt {osp.relpath(opt_path, REPO_ROOT)} --auto_resume'
    if osp.isfile(model_path):
        say(f'{name}: trained already ({osp.relpath(model_path, REPO_ROOT)})')
    else:
        say(f'{name}: training ({train_cmd})')
        run_entry('train', opt_path, osp.join(work_dir, 'logs', f'train_{name}.log'), ['--auto_resume'], threads)
    test_opt = test_options(opt, model_path, benchmark_root, sets)
    test_path = write_options(test_opt, osp.join(work_dir, 'options', f'test_{name}.yml'))
    # Metrics are kept with the model's modification time: a study run again (for its table or plot) does not test
    # an unchanged model again unless retest.
    cache_path = osp.join(work_dir, 'metrics', f'{name}.json')
    key = dict(model_mtime=osp.getmtime(model_path), test_options=test_opt)
    cached = load_json(cache_path) if osp.isfile(cache_path) and not retest else None
    if cached and cached['key'] == json.loads(json.dumps(key)):
        say(f'{name}: tested already ({osp.relpath(cache_path, REPO_ROOT)})')
        metrics, test_time = cached['metrics'], cached['test_wall_time_s']
    else:
        say(f'{name}: testing on {", ".join(sets)}')
        start = time.perf_counter()
        metrics = parse_metrics(run_entry('test', test_path, osp.join(work_dir, 'logs', f'test_{name}.log'),
                                          threads=threads))
        test_time = time.perf_counter() - start
        missing = [s for s in sets if s not in metrics]
        if missing:
            raise RuntimeError(f'No metrics for {", ".join(missing)} in the test log of {name}.')
        os.makedirs(osp.dirname(cache_path), exist_ok=True)
        with open(cache_path, 'w') as f:
            json.dump(dict(key=key, metrics=metrics, test_wall_time_s=test_time), f, indent=2)
    return dict(name=name, type=opt['network_g']['type'], n_scales=opt['network_g'].get('n_scales', 1),
                network_g=opt['network_g'], budget=budget_of(opt), **complexity_of(opt), metrics=metrics,
                train_wall_time_s=training_wall_time(exp_dir), test_wall_time_s=test_time, train_command=train_cmd)


def study(args):
    """Train and test every network of the study ``args`` (``scripts/compare_quality.py``'s arguments); return the
    result (rows of metrics, complexity, budget, wall times)."""
    plain = load_options(args.opt)
    if args.iters:  # a shorter budget for every network alike (tests, smoke runs)
        plain['train']['total_iter'] = args.iters
        if plain['train']['scheduler']['type'] == 'CosineAnnealingRestartLR':
            plain['train']['scheduler']['periods'] = [args.iters]
        plain['logger']['save_checkpoint_freq'] = args.iters
        plain['name'] += f'_{args.iters}it'
    check_study_inputs(plain, args.opt, args.benchmark_root, args.sets)
    variants = [plain] + [derive_options(plain, n, args.interaction) for n in args.n_scales]
    changes = [None] * len(variants)  # what an ablation changed, per network
    for text in args.ablation:
        tag, base, overrides = parse_ablation(text)
        base_opt = plain if base == 'plain' else derive_options(plain, int(base[1:]), args.interaction)
        variants.append(derive_ablation(base_opt, tag, overrides))
        changes.append(', '.join(f'{k}={v}' for k, v in overrides.items()))
    work_dir = osp.join(REPO_ROOT, 'experiments', 'quality_study', plain['name'])
    rows = [dict(train_and_test(opt, work_dir, args.benchmark_root, args.sets, args.threads, args.retest),
                 change=change) for opt, change in zip(variants, changes)]
    for row in rows:
        row['params_ratio'] = row['params'] / rows[0]['params']
        row['macs_ratio'] = row['macs'] / rows[0]['macs']
        row['delta_psnr'] = {s: row['metrics'][s]['psnr'] - rows[0]['metrics'][s]['psnr'] for s in args.sets}
    study_name = plain['name'] + ('_ablations' if args.ablation else '')
    return dict(study=study_name, plain_options=osp.relpath(osp.abspath(args.opt), REPO_ROOT),
                task=task_of(plain), scale=plain['scale'], budget=budget_of(plain), sets=list(args.sets),
                complexity_input=f'1x3x{COMPLEXITY_SIZE}x{COMPLEXITY_SIZE}', threads=args.threads,
                command='python scripts/compare_quality.py ' + ' '.join(args.argv), rows=rows)


def markdown(result):
    sets = result['sets']
    budget = result['budget']
    lines = [
        f"**{result['study']}** — {result['task']}" + (f" ×{result['scale']}" if result['task'] == 'sr' else '') +
        f"; every network{' (but for the change in its row)' if any(r.get('change') for r in result['rows']) else ''}: "
        f"{budget['iterations']} iterations, batch {budget['batch']}, HR patch {budget['gt_size']}, "
        f"seed {budget['seed']}, Adam {budget['lr']:g} + {budget['scheduler']}, EMA {budget['ema_decay']}, "
        f"tested weights `{budget['tested_weights']}`, data {budget['dataset']}.",
        '',
        f'Command: `{result["command"]}`',
        '',
        '| Network | Params | Mult-adds (' + result['complexity_input'] + ') | ' +
        ' | '.join(f'{s} PSNR / SSIM (Y)' for s in sets) + ' | ΔPSNR vs plain (' + ' / '.join(sets) +
        ') | Train wall time |',
        '|---|---:|---:|' + '---:|' * len(sets) + '---:|---:|',
    ]
    for row in result['rows']:
        lines.append(
            f"| {row_label(row)} | {row['params']:,} ({100 * row['params_ratio']:.0f}%) | {row['macs'] / 1e9:.2f} G "
            f"({100 * row['macs_ratio']:.0f}%) | " +
            ' | '.join(f"{row['metrics'][s]['psnr']:.2f} / {row['metrics'][s]['ssim']:.4f}" for s in sets) + ' | ' +
            ('–' if row is result['rows'][0] else ' / '.join(f"{row['delta_psnr'][s]:+.2f}" for s in sets)) +
            f" | {row['train_wall_time_s'] / 60:.0f} min |")
    return '\n'.join(lines) + '\n'


def row_label(row):
    """'EDSR', 'MS3EDSR n=2', 'MS3EDSR n=2, network_g.upsample=bilinear'."""
    label = row['type'] if row['n_scales'] == 1 else f"{row['type']} n={row['n_scales']}"
    return f"{label}, {row['change']}" if row.get('change') else label


def plot(result, path):
    """PSNR against multiply-adds, one panel per test set, saved to ``path``."""
    require('matplotlib', 'study').use('Agg')
    plt = require('matplotlib.pyplot', 'study')

    sets = result['sets']
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.6), squeeze=False)
    for ax, set_name in zip(axes[0], sets):
        main = [row for row in result['rows'] if not row.get('change')]  # plain and its conversions: one line
        ax.plot([row['macs'] / 1e9 for row in main], [row['metrics'][set_name]['psnr'] for row in main],
                color='0.7', zorder=1)
        for k, row in enumerate(result['rows']):
            x, y = row['macs'] / 1e9, row['metrics'][set_name]['psnr']
            label = 'plain' if row['n_scales'] == 1 else f"n={row['n_scales']}"
            if row.get('change'):
                label += ', ' + row['change'].replace('network_g.', '').replace('train.', '')
            ax.scatter([x], [y], s=40, zorder=2, marker='D' if row.get('change') else 'o',
                       color=plt.cm.tab10(k) if len(result['rows']) <= 10 else plt.cm.tab20(k % 20),
                       label=f"{row['type']} ({label})")
            if not row.get('change'):  # ablations are told apart by the legend
                ax.annotate(label, (x, y), textcoords='offset points', xytext=(5, 5), fontsize=9)
        ax.set_title(set_name)
        ax.set_xlabel(f"multiply-adds, G ({result['complexity_input']})")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel('PSNR on Y (dB)')
    legend_height = 0.  # inches kept under the panels for the legend
    if len(result['rows']) > 4:  # many networks: one legend under the panels, two columns
        legend_height = 0.2 * ((len(result['rows']) + 1) // 2) + 0.2
        fig.set_size_inches(4.2 * len(sets), 3.6 + legend_height)
        fig.legend(*axes[0][0].get_legend_handles_labels(), fontsize=8, loc='lower center', ncol=2)
    else:
        axes[0][-1].legend(fontsize=8, loc='lower right')
    budget = result['budget']
    fig.suptitle(f"{result['study']}: {budget['iterations']} iterations each, batch {budget['batch']}, "
                 f"patch {budget['gt_size']}", fontsize=10)
    fig.tight_layout(rect=(0, legend_height / fig.get_size_inches()[1], 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_result(result, out, to_markdown=None, to_plot=None):
    """Write a study's ``result`` to ``out`` as ``<study>.json``, ``.md`` (``to_markdown``) and ``.png``
    (``to_plot``; both default to this study's), print the table; return ``result``."""
    os.makedirs(out, exist_ok=True)
    stem = osp.join(out, result['study'])
    with open(stem + '.json', 'w') as f:
        json.dump(result, f, indent=2)
    table = (to_markdown or markdown)(result)
    with open(stem + '.md', 'w') as f:
        f.write(table)
    (to_plot or plot)(result, stem + '.png')
    print(table)
    print(f'Written: {stem}.json, .md, .png')
    return result


def run(args):
    """``study(args)``, written to ``args.out`` (``write_result``); return the result."""
    return write_result(study(args), args.out)
