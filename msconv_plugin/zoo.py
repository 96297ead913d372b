"""The model zoo: where it is, reading it, checking and loading its weights, building a network from a zoo name or
from a checkpoint and its option file, and publishing a trained network into it (``scripts/publish_model.py``).

The zoo index ``model_zoo.json`` and the weight files ``weights/<name>-<sha256[:8]>.pth`` ship inside the package
(``msconv_plugin/``), so a zoo name works wherever the plugin is installed; ``--zoo`` or ``$MSCONV_ZOO`` point at
another index (weight files are found relative to it).
"""
import datetime
import json
import os
import os.path as osp
import platform
import re
import tempfile
import warnings

import torch
import yaml
from basicsr.archs import build_network

from .basicsr_fixes.checkpoints import load_network_checkpoint
from .basicsr_fixes.mismatch import describe_mismatch
from .cli import UserError
from .file_safety import sha256_of, verify_sha256
from .study import (COMPLEXITY_SIZE, REPO_ROOT, TEST_SETS, budget_of, complexity_of, load_options, parse_metrics,
                    recorded_network_options, run_entry, task_of, test_options, tested_param_key, training_wall_time,
                    write_options)

PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
DEFAULT_ZOO = osp.join(PACKAGE_DIR, 'model_zoo.json')
ZOO_ENV = 'MSCONV_ZOO'
# Networks' constructor arguments that give their upscaling factor.
SCALE_ARGS = ('upscale', 'scale')


def resolve_zoo_path(path=None):
    """The model zoo file: ``path`` if given, else ``$MSCONV_ZOO``, else ``model_zoo.json`` of the package."""
    return osp.abspath(osp.expanduser(path or os.environ.get(ZOO_ENV) or DEFAULT_ZOO))


def load_zoo(path=None):
    """Read the model zoo JSON (see ``resolve_zoo_path``) and return it: a dict with a list ``models``."""
    path = resolve_zoo_path(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'Model zoo file not found: {path} (give another one with --zoo or ${ZOO_ENV}).')
    with open(path) as f:
        zoo = json.load(f)
    if not isinstance(zoo, dict) or not isinstance(zoo.get('models'), list):
        raise ValueError(f'{path} is not a model zoo: expected {{"models": [...]}}.')
    return zoo


def zoo_entry(name, zoo_path=None):
    """The zoo entry (a copy) called ``name``, with ``weights_path``: the absolute path of its weight file.

    Raises ``ValueError`` listing the known names when there is none of that name.
    """
    path = resolve_zoo_path(zoo_path)
    models = load_zoo(path)['models']
    for entry in models:
        if entry.get('name') == name:
            entry = dict(entry)
            for key in ('file', 'network_g'):
                if key not in entry:
                    raise ValueError(f'Zoo entry {name!r} of {path} has no {key!r}.')
            entry['weights_path'] = osp.normpath(osp.join(osp.dirname(path), entry['file']))
            return entry
    known = ', '.join(sorted(str(entry.get('name')) for entry in models)) or 'none'
    raise ValueError(f'Unknown model {name!r}: not a file, nor a name of the model zoo {path}. Known names: {known}.')


def network_scale(network_g, scale=None, source='network_g'):
    """The upscaling factor: ``scale`` if given (checked against ``network_g``), else the network's own, else 1."""
    own = next((network_g[arg] for arg in SCALE_ARGS if arg in network_g), None)
    if scale is None:
        return int(own) if own is not None else 1
    if own is not None and int(own) != int(scale):
        raise ValueError(f'{source}: scale {scale} but network_g {network_g.get("type")} upscales by {own}.')
    return int(scale)


def checkpoint_state_dict(checkpoint, param_key=None, source='The checkpoint'):
    """The network weights held by a loaded BasicSR checkpoint, and the key they came from.

    ``param_key`` if given; else ``params_ema`` is preferred to ``params`` (short runs: the EMA may still hold much
    of the random initialisation, see ``scripts/compare_quality.py``; then ask for ``params``); a bare state dict is
    taken as it is (key ``None``). A leading ``module.`` (DataParallel / DistributedDataParallel) is stripped from
    the keys. ``source`` names the checkpoint in error messages.
    """
    keys = ', '.join(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint).__name__
    if param_key is not None and (not isinstance(checkpoint, dict) or param_key not in checkpoint):
        raise KeyError(f'{source} has no {param_key!r} (keys: {keys}).')
    if isinstance(checkpoint, dict):
        param_key = param_key or next((key for key in ('params_ema', 'params') if key in checkpoint), None)
    if param_key is not None:
        state_dict = checkpoint[param_key]
    elif isinstance(checkpoint, dict) and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state_dict = checkpoint
    else:
        raise ValueError(f'{source} has neither "params_ema" nor "params" (keys: {keys}); a training state file '
                         '(experiments/<name>/training_states) holds no network: use experiments/<name>/models/.')
    return {key.removeprefix('module.'): value for key, value in state_dict.items()}, param_key


class WeightsMismatchError(UserError, RuntimeError):
    """A checkpoint that does not fit the network (a user's mistake: the wrong file or options)."""


def load_weights(net, path, param_key=None):
    """Load a BasicSR checkpoint into ``net`` strictly; return the key used ('params_ema', 'params' or None).

    Which weights: see ``checkpoint_state_dict``. A truncated ``net_g_latest.pth`` (or ``net_g_<iter>.pth``) of an
    experiment falls back, with a warning, to the newest complete checkpoint before it (``load_network_checkpoint``).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Weight file not found: {path}')
    checkpoint, path = load_network_checkpoint(path, weights_only=True)
    state_dict, param_key = checkpoint_state_dict(checkpoint, param_key, source=path)
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        summary = describe_mismatch(net, state_dict, path, param_key)  # torch lists every parameter name
        details = '\n'.join(summary.split('\n')[1:]) if summary else str(error)
        raise WeightsMismatchError(f'The weights of {path} ({param_key or "state dict"}) do not fit the network '
                                   f'{type(net).__name__}:\n{details}') from None
    return param_key


def read_options(path):
    """A BasicSR option file's ``network_g`` and ``scale``."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Option file not found: {path}')
    with open(path) as f:
        opt = yaml.safe_load(f)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict):
        raise ValueError(f'{path} has no network_g section: is it a BasicSR option file?')
    return opt['network_g'], opt.get('scale')


def is_model_path(model):
    """Whether ``--model`` names a file rather than a zoo entry."""
    return osp.exists(model) or model.endswith(('.pth', '.pt')) or os.sep in model or '/' in model


def build_model(model, opt=None, zoo_path=None, device='cpu', param_key=None):
    """Build a network and load its weights; return ``(net, scale, info)``.

    Args:
        model (str): A name of the model zoo or the path of a BasicSR checkpoint.
        opt (str | None): BasicSR option file (``network_g``, ``scale``); required with a checkpoint path, ignored
            with a zoo name.
        zoo_path (str | None): Model zoo file; see ``resolve_zoo_path``.
        device (str | torch.device): Where the network goes.
        param_key (str | None): Weights of a checkpoint to load ('params' or 'params_ema'); see ``load_weights``.

    Returns:
        tuple: the network (eval mode, on ``device``), its upscaling factor (1 for denoising and deblurring), and
        ``info``: dict with ``name``, ``source`` ('zoo' or 'checkpoint'), ``weights_path``, ``param_key``,
        ``network_g``, ``task`` and ``entry`` (the zoo entry, or None).
    """
    if is_model_path(model):
        if not osp.isfile(model):
            raise FileNotFoundError(f'Model file not found: {model}')
        if opt is None:
            raise ValueError(f'{model} is a checkpoint: give the BasicSR option file it was trained with (--opt), '
                             'which says which network it holds (network_g) and its scale.')
        network_g, scale = read_options(opt)
        scale = network_scale(network_g, scale, source=opt)
        info = dict(name=osp.splitext(osp.basename(model))[0], source='checkpoint', weights_path=osp.abspath(model),
                    network_g=network_g, task='sr' if scale > 1 else None, entry=None)
    else:
        entry = zoo_entry(model, zoo_path)
        if opt is not None:
            warnings.warn(f'--opt {opt} is ignored: the zoo entry {model!r} gives the network.')
        network_g = entry['network_g']
        scale = network_scale(network_g, entry.get('scale'), source=f'zoo entry {model!r}')
        if not osp.isfile(entry['weights_path']):
            raise FileNotFoundError(f'Weight file of zoo entry {model!r} not found: {entry["weights_path"]}')
        verify_sha256(entry['weights_path'], entry.get('sha256'),
                      f'zoo entry {model!r} of {resolve_zoo_path(zoo_path)}')
        info = dict(name=model, source='zoo', weights_path=entry['weights_path'], network_g=network_g,
                    task=entry.get('task'), entry=entry)
    net = build_network(dict(network_g))  # build_network pops 'type' from a deep copy
    info['param_key'] = load_weights(net, info['weights_path'], param_key)
    return net.eval().to(device), scale, info


SHARED_BENCHMARK_ROOT = '../shared/data/benchmark'  # as seen from the repository root, where the tests run
SET5_TOLERANCE_DB = 0.01


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
    """``path`` relative to the repository root, as option files and cards name files."""
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
    checkpoint, _ = load_network_checkpoint(args.checkpoint, fallback=False, weights_only=True)  # publish that file
    state_dict, source_key = checkpoint_state_dict(checkpoint, args.param_key or tested_param_key(train_opt),
                                                   source=args.checkpoint)
    net_opt = recorded_network_options(train_opt['network_g'])
    net = build_network(dict(net_opt))
    net.load_state_dict(state_dict, strict=True)

    path, digest = save_weights(state_dict, args.weights_dir, args.name, half=args.half)
    test_opt = test_options(dict(train_opt, network_g=net_opt), rel(path), SHARED_BENCHMARK_ROOT, TEST_SETS,
                            name=f'{args.name}_zoo_test')
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
        file=osp.relpath(osp.abspath(path), osp.dirname(osp.abspath(args.zoo))),  # zoo_entry reads it so
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
        'Generated by `scripts/publish_model.py` from `msconv_plugin/model_zoo.json` (do not edit by hand). Weights '
        'are in `msconv_plugin/weights/` (both ship with the package), named `<name>-<first 8 hex of sha256>.pth`, '
        'holding `{"params": state_dict}` in float16 (half the size; the networks load them into float32). '
        'Each has a test option file under `options/test/zoo/`, and '
        '`python -m msconv_plugin.inference -i <images> -o <folder> --model <name>` applies it to any image.',
        '',
        'Every network was trained on Sun–Hays 80 (80 photographs, `../shared/data/train/SunHays80`) on the CPU of '
        'this project\'s machines, with the budget given per card: far from the DIV2K/GPU budgets of the papers, so '
        'the absolute figures are low; the point is the comparison of each MS³ network with its plain counterpart, '
        'trained the same way. PSNR/SSIM are on the Y channel (border of `scale` pixels cropped for SR). The runs went '
        'two or three at a time, one thread each, on 2 cores: wall times are those of a loaded machine. Each card\'s '
        '`network_g` is what its weights were trained with: the MS³ networks here started their cross-scale kernels '
        'like the same-scale kernel (`cross_scale_init: 1`, the default until 2026-12-01; it is 0 since) and the '
        'MS3EDSR networks converted the trunk only (`scope: trunk`, the default again since 2026-12-04; it was `whole` '
        'from 2026-12-01 to 2026-12-04), '
        'so retraining one from its option file needs those values in `network_g` to reproduce it.',
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
            f"[{osp.basename(e['file'])}](../msconv_plugin/{e['file']}) |")
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
