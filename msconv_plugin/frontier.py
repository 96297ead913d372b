"""Accuracy–cost frontier: the plain network at several widths against its MS³ conversions at several widths.

The honest alternative to an MS³ network is a narrower plain network of the same cost. A frontier study trains a
*family* under one recipe (the plain network's BasicSR option file): the plain network at each of ``widths``, each
MS³ conversion (``n_scales``) at each of its widths, every member with each of ``seeds``. Every member is trained
and tested like the equal-budget study's networks (:func:`msconv_plugin.study.train_and_test`: BasicSR's own
pipelines, ``--auto_resume``, metrics cached), and each distinct network's CPU inference latency is measured
interleaved with all the others (median, fastest memory format, at each thread count).

The plain widths, joined by straight lines in (log multiply-adds, PSNR) and in (log latency, PSNR), form the
frontier a user gets by narrowing; a width that is costlier and no better than another (on the CPU, a width that
is a multiple of 16 can run faster than a narrower one) is dominated and left off the line. Each MS³ member's
distance to it is its PSNR minus the frontier's PSNR at the same multiply-adds (or the same latency), interpolated
on the plain line; it is computed per seed, against the plain line of the seed-mean PSNRs, and reported as mean
with min/max over seeds. A point outside the plain line's range has no distance (``None``): we do not extrapolate;
a cost within 1% beyond an end of the line (an MS³ width chosen to match the widest plain network's multiply-adds
lands a hair above them) is compared with that end.

Names: the plain member of width W and seed S is ``<plain name>_f<W>-s<S>``; the conversion with n scales is
``<MS3 type><rest of the plain name>_n<n>_f<W>-s<S>`` (``msconv_plugin.study.derive_options``), its network options
updated with ``ms3_options`` (for example ``cross_scale_init: 0``).
"""
import argparse
import copy
import glob
import inspect
import json
import math
import re
import os.path as osp
import platform
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor

import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from .benchmark import FORMATS, interleaved_medians, make_calls
from .cli import run as run_cli
from .complexity import at_width, width_keys
from .extras import require
from .study import (COMPLEXITY_SIZE, DEFAULT_BENCHMARK_ROOT, REPO_ROOT, TEST_SETS, budget_of, check_study_inputs,
                    degradation_of, derive_ablation, derive_options, load_options, parse_overrides,
                    recorded_network_options, task_of, train_and_test, without_spelled_out_defaults, write_result)

END_TOLERANCE = 0.01  # relative cost beyond an end of the plain line still compared with that end
PSNR_MEAN = 'mean'  # the key of the mean PSNR over the test sets, next to each set's name
QUALITY_TARGET = 0.10  # dB above the plain line at equal multiply-adds: the bar of docs/when_to_use_ms3.md


def member_options(base_opt, width, seed):
    """``base_opt`` (a plain or converted network's training options) at ``num_feat`` ``width`` and
    ``manual_seed`` ``seed``, named ``<base name>_f<width>-s<seed>``. The network's other width arguments
    (``complexity.WIDTH_KEYS``: RRDBNet's ``num_grow_ch``) scale with ``num_feat``, as when the benchmark narrows a
    network; they are written out (the constructor's default where the option file leaves one out)."""
    opt = copy.deepcopy(base_opt)
    net = opt['network_g']
    keys = width_keys(net['type'])
    if keys[0] != 'num_feat':
        raise ValueError(f"network_g.type {net['type']}: its width is {keys[0]}, not num_feat; the frontier study "
                         'varies num_feat.')
    parameters = inspect.signature(ARCH_REGISTRY.get(net['type'])).parameters if net['type'] in ARCH_REGISTRY else {}
    for key in keys:
        if key not in net and key in parameters:
            net[key] = parameters[key].default
    opt['network_g'] = at_width(net, keys, width)
    opt['manual_seed'] = seed
    opt['name'] = f"{base_opt['name']}_f{width}-s{seed}"
    return opt


def model_path(opt):
    """Where BasicSR's training of ``opt`` leaves its final network."""
    return osp.join(REPO_ROOT, 'experiments', opt['name'], 'models', 'net_g_latest.pth')


def config_key(opt):
    """The network a member trains, without its seed: ``'plain f46'``, ``'n2 f90'``."""
    net = opt['network_g']
    n = net.get('n_scales', 1)
    return f"{'plain' if n == 1 else f'n{n}'} f{net['num_feat']}"


def seed_summary(values):
    """Mean, min, max, spread (max − min) and count of per-seed values; ``None`` entries are left out."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return dict(mean=statistics.fmean(values), min=min(values), max=max(values), spread=max(values) - min(values),
                n=len(values))


def frontier_points(points):
    """The ``(cost, psnr)`` points that make the frontier, by cost: each better than every cheaper one. A plain
    width that costs at least as much as another and is no better (on the CPU a width that is a multiple of 16 can
    run faster than a narrower one) is dominated: a user would pick the other, so it is left off the line."""
    kept = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not kept or y > kept[-1][1]:
            kept.append((x, y))
    return kept


def interpolate(points, x, tolerance=END_TOLERANCE):
    """The plain line's PSNR at cost ``x``: ``points`` are ``(cost, psnr)``; the frontier ones
    (:func:`frontier_points`) are joined by straight lines in (log cost, PSNR), and beyond the costliest of them (when
    costlier points are dominated) the line stays level. A cost within ``tolerance`` (relative) beyond an end of
    the points' range counts as that end's cost; ``None`` further outside (no extrapolation)."""
    points = sorted(points)
    if not points or not points[0][0] / (1 + tolerance) <= x <= points[-1][0] * (1 + tolerance):
        return None
    points = frontier_points(points)
    x = min(max(x, points[0][0]), points[-1][0])
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + t * (y1 - y0)
    return points[0][1]  # a single frontier point


def psnr_with_mean(metrics, sets):
    """{set: PSNR, 'mean': mean over ``sets``} from one member's metrics."""
    values = {s: metrics[s]['psnr'] for s in sets}
    values[PSNR_MEAN] = statistics.fmean(values[s] for s in sets)
    return values


def aggregate(members, sets):
    """Group the tested members by network (``config_key``) and summarise their seeds.

    ``members``: dicts with ``key``, ``seed``, ``n_scales``, ``params``, ``macs``, ``metrics`` (and optionally
    ``latency_ms``: {threads: ms}). Returns one dict per network with ``psnr`` {set or 'mean': seed_summary} and the
    per-seed values in ``per_seed``.
    """
    configs = {}
    for m in members:
        c = configs.setdefault(m['key'], dict(key=m['key'], n_scales=m['n_scales'], width=m['width'],
                                             params=m['params'], macs=m['macs'], latency_ms=m.get('latency_ms', {}),
                                             per_seed={}))
        c['per_seed'][m['seed']] = psnr_with_mean(m['metrics'], sets)
    for c in configs.values():
        c['psnr'] = {k: seed_summary([v[k] for v in c['per_seed'].values()]) for k in [*sets, PSNR_MEAN]}
    return sorted(configs.values(), key=lambda c: (c['n_scales'], c['macs']))


def frontier_distances(configs, sets, threads=()):
    """Add to every MS³ network its distance to the plain line: ``delta_macs[set or 'mean']`` and
    ``delta_latency[threads][set or 'mean']``, each a ``seed_summary`` of per-seed distances (``None`` outside the
    plain line's range)."""
    plain = [c for c in configs if c['n_scales'] == 1]
    for c in configs:
        if c['n_scales'] == 1:
            continue
        c['delta_macs'] = {}
        c['delta_latency'] = {t: {} for t in threads}
        for k in [*sets, PSNR_MEAN]:
            line = [(p['macs'], p['psnr'][k]['mean']) for p in plain]
            ref = interpolate(line, c['macs'])
            c['delta_macs'][k] = None if ref is None else seed_summary(
                [v[k] - ref for v in c['per_seed'].values()])
            for t in threads:
                line = [(p['latency_ms'][t], p['psnr'][k]['mean']) for p in plain]
                ref = interpolate(line, c['latency_ms'][t])
                c['delta_latency'][t][k] = None if ref is None else seed_summary(
                    [v[k] - ref for v in c['per_seed'].values()])
    return configs


def family_options(plain_opt, widths, ms3_widths, seeds, ms3_options=None, interaction='adjacent', ms3_tag=None):
    """Every member's training options: the plain network at ``widths``, the conversion with ``n`` scales at
    ``ms3_widths[n]``, each with every seed in ``seeds``. ``ms3_options`` update every converted network; a
    ``ms3_tag`` is added to the converted networks' names (``..._n2-<tag>_f64-s0``), so that variants of their
    options trained under one recipe keep apart."""
    bases = [(plain_opt, widths)]
    for n, n_widths in ms3_widths.items():
        base = derive_options(plain_opt, n, interaction)
        base['network_g'] = recorded_network_options(dict(base['network_g'], **(ms3_options or {})))
        if ms3_tag:
            base['name'] += f'-{ms3_tag}'
        bases.append((base, n_widths))
    return [member_options(base, w, seed) for seed in seeds for base, ws in bases for w in ws]


def measure_latency(networks, size, threads, warmup=2, repeats=7):
    """CPU inference latency (ms, batch 1, ``size``×``size`` input) of each of ``networks`` ({key: network_g
    options}) at each thread count: interleaved rounds over every network and memory format, median per setting,
    the fastest format per network. Returns {key: {threads: ms}} and {key: {threads: format}}."""
    latency, fastest_format = {k: {} for k in networks}, {k: {} for k in networks}
    previous = torch.get_num_threads()
    try:
        for t in threads:
            torch.set_num_threads(t)
            calls = {}
            for key, net_opt in networks.items():
                torch.manual_seed(0)
                model = build_network(copy.deepcopy(net_opt)).eval()
                for fmt in FORMATS:
                    calls[key, fmt] = make_calls(model, 'cpu', 'fp32', fmt, size, 1, 8, 1)[0]  # inference only
            medians = interleaved_medians(calls, warmup, repeats)
            for key in networks:
                fmt = min(FORMATS, key=lambda f: medians[key, f])
                latency[key][t], fastest_format[key][t] = medians[key, fmt] * 1e3, fmt
    finally:
        torch.set_num_threads(previous)
    return latency, fastest_format


def earlier_members(paths):
    """{member name: (member, path)} of earlier frontier results (JSON files written by this module), and
    {path: the commands that trained and tested them}: those of what they reused and, when they trained members
    themselves, their own command."""
    members, commands = {}, {}
    for path in paths:
        if not osp.isfile(path):
            raise FileNotFoundError(f'--reuse: no such frontier result: {path}.')
        with open(path) as f:
            result = json.load(f)
        for m in result.get('members', []):
            members.setdefault(m['name'], (m, path))
        reused = [c for r in result.get('reused', []) for c in r['commands']]
        trained_here = any('reused_from' not in m for m in result.get('members', []))
        commands[osp.relpath(osp.abspath(path), REPO_ROOT)] = list(
            dict.fromkeys(reused + [result.get('command')] if trained_here or not reused else reused))
    return members, commands


def reused_row(opt, earlier, sets):
    """The row of ``opt``'s member from ``earlier`` results (``earlier_members``), without its latency, or ``None``
    when none holds it. A member of the same name trained or tested otherwise is an error, not a silent retrain."""
    if opt['name'] not in earlier:
        return None
    m, path = earlier[opt['name']]
    differs = [what for what, mine, theirs in (('network_g', opt['network_g'], m['network_g']),
                                               ('budget', budget_of(opt), m['budget']))
               if json.loads(json.dumps(mine)) != theirs]
    differs += [f'metrics of {s}' for s in sets if s not in m['metrics']]
    if differs:
        raise ValueError(f"--reuse: {opt['name']} in {path} differs from this family's ({', '.join(differs)}); "
                         'leave that file out or give the recipe another --name.')
    row = {k: v for k, v in m.items() if k not in ('key', 'seed', 'width', 'latency_ms')}
    return dict(row, reused_from=osp.relpath(osp.abspath(path), REPO_ROOT))


def run(plain_path, widths, ms3_widths, seeds, ms3_options=None, interaction='adjacent', ms3_tag=None, overrides=None,
        name=None, benchmark_root=DEFAULT_BENCHMARK_ROOT, sets=TEST_SETS, threads=None, jobs=1, latency_size=128,
        latency_threads=(1, 2), latency_repeats=7, retest=False, skip_untrained=False, command=None, reuse=()):
    """Train, test and time every member of a family (``family_options``); returns the study's result (JSON-able).

    ``overrides`` ({dotted key: value}) change the recipe for every member and ``name`` renames it (both, or
    neither); ``jobs`` members are trained side by side (``threads`` OpenMP threads each). With ``skip_untrained``
    nothing is trained: members without a finished model (``net_g_latest.pth``) are left out of the tables and
    listed under ``untrained`` (for a look at a family still training elsewhere). Members found in the earlier
    results ``reuse`` (frontier JSON files: the durable record of a study, when ``experiments/`` is gone) are
    neither trained nor tested again: their metrics are taken from there; every network is timed again.
    """
    if overrides and not name:
        raise ValueError('A recipe changed with --set needs its own study name (--name), so that its networks are '
                         'not mistaken for those of the unchanged recipe.')
    plain = load_options(plain_path)
    if overrides:
        plain = derive_ablation(plain, 'x', overrides)
    if name:
        plain['name'] = name
    opts = family_options(plain, widths, ms3_widths, seeds, ms3_options, interaction, ms3_tag)
    earlier, earlier_commands = earlier_members(reuse)
    reused = {o['name']: reused_row(o, earlier, sets) for o in opts}
    untrained = [o['name'] for o in opts if not reused[o['name']] and not osp.isfile(model_path(o))]
    if skip_untrained:
        opts = [o for o in opts if o['name'] not in untrained]
        if not opts:
            raise FileNotFoundError(f"No member of {plain['name']} has finished training (--skip-untrained).")
    # the training data only when something is to be trained; the test sets always
    check_study_inputs(plain, plain_path, benchmark_root, sets, training=bool(untrained) and not skip_untrained)
    work_dir = osp.join(REPO_ROOT, 'experiments', 'quality_study', plain['name'])
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rows = list(pool.map(lambda o: reused[o['name']] or train_and_test(o, work_dir, benchmark_root, sets, threads,
                                                                           retest), opts))
    networks = {config_key(o): o['network_g'] for o in opts}
    latency, formats = measure_latency(networks, latency_size, latency_threads, repeats=latency_repeats)
    members = []
    for opt, row in zip(opts, rows):
        key = config_key(opt)
        members.append(dict(row, key=key, seed=opt['manual_seed'], width=opt['network_g']['num_feat'],
                            latency_ms=latency[key]))
    configs = aggregate(members, sets)
    for c in configs:
        c['latency_format'] = formats[c['key']]
    frontier_distances(configs, sets, latency_threads)
    study = plain['name'] + '_frontier' + (f'_{ms3_tag}' if ms3_tag else '')
    return dict(study=study, plain_options=osp.relpath(osp.abspath(plain_path), REPO_ROOT),
                recipe_overrides=overrides or {}, ms3_options=ms3_options or {}, interaction=interaction,
                task=task_of(plain), degradation=degradation_of(plain), scale=plain['scale'], budget=budget_of(plain),
                sets=list(sets), seeds=list(seeds), complexity_input=f'1x3x{COMPLEXITY_SIZE}x{COMPLEXITY_SIZE}',
                latency=dict(input=f'1x3x{latency_size}x{latency_size}', threads=list(latency_threads),
                             repeats=latency_repeats, machine=platform.processor() or platform.machine(),
                             torch=torch.__version__),
                command=command, members=members, configs=configs, untrained=untrained if skip_untrained else [],
                reused=[dict(path=p, commands=earlier_commands[p])
                        for p in sorted({m['reused_from'] for m in members if 'reused_from' in m})])


def _fmt_summary(s, signed=False):
    if s is None:
        return 'outside'
    fmt = '{:+.2f}' if signed else '{:.2f}'
    text = fmt.format(s['mean'])
    return text + (f" [{fmt.format(s['min'])}, {fmt.format(s['max'])}]" if s['n'] > 1 else '')


def markdown(result):
    """The study's table: one row per network, PSNR mean [min, max] over seeds, distances to the plain line."""
    sets, threads, budget = result['sets'], result['latency']['threads'], result['budget']
    # ratios against the widest plain network (the widest network when the family has no plain member)
    ref = max([c for c in result['configs'] if c['n_scales'] == 1] or result['configs'], key=lambda c: c['macs'])
    lines = [
        f"**{result['study']}** — {_task_label(result)}; every network: {budget['iterations']} iterations, "
        f"batch {budget['batch']}, HR patch {budget['gt_size']}, "
        f"Adam {budget['lr']:g} + {budget['scheduler']}, tested weights `{budget['tested_weights']}`, data "
        f"{budget['dataset']}; seeds {', '.join(map(str, result['seeds']))}"
        + (f"; MS³ options {result['ms3_options']}" if result['ms3_options'] else '') + '.',
        '',
        f"Command: `{result['command']}`",
        '',
        f"PSNR on Y: mean over seeds [min, max]; 'mean' is the mean of {' / '.join(sets)}. ΔPSNR: each seed's "
        f"PSNR minus the plain line's at the same multiply-adds or the same latency (the line joins the plain widths' "
        f"PSNR means over their seeds, interpolated in log cost; a plain width costlier and no better than another is "
        f"left off it), mean [min, max] over the network's seeds; 'outside' = beyond the plain widths' range (more "
        f"than {END_TOLERANCE:.0%}). Latency: "
        f"{result['latency']['input']}, batch 1, median of {result['latency']['repeats']} interleaved rounds, fastest "
        f"memory format, {result['latency']['machine']}, torch {result['latency']['torch']}. Ratios are against the "
        f"widest plain network ({ref['key']}).",
        '',
        '| Network | Params | Mult-adds (' + result['complexity_input'] + ') | ' +
        ' | '.join(f'Latency {t} thr (ms)' for t in threads) + ' | ' + ' | '.join(f'{s} PSNR' for s in sets) +
        ' | mean PSNR | ΔPSNR @ equal MACs | ' + ' | '.join(f'ΔPSNR @ equal latency {t} thr' for t in threads) + ' |',
        '|---|---:|---:|' + '---:|' * len(threads) + '---:|' * len(sets) + '---:|---:|' + '---:|' * len(threads),
    ]
    for c in result['configs']:
        label = ('plain' if c['n_scales'] == 1 else f"MS³ n={c['n_scales']}") + f", {c['width']} ch"
        ms3 = c['n_scales'] > 1
        lines.append(
            f"| {label} | {c['params']:,} ({100 * c['params'] / ref['params']:.0f}%) | {c['macs'] / 1e9:.2f} G "
            f"({100 * c['macs'] / ref['macs']:.0f}%) | " +
            ' | '.join(f"{c['latency_ms'][t]:.0f}" for t in threads) + ' | ' +
            ' | '.join(_fmt_summary(c['psnr'][s]) for s in sets) + f" | {_fmt_summary(c['psnr'][PSNR_MEAN])} | " +
            (_fmt_summary(c['delta_macs'][PSNR_MEAN], signed=True) if ms3 else '–') + ' | ' +
            ' | '.join(_fmt_summary(c['delta_latency'][t][PSNR_MEAN], signed=True) if ms3 else '–' for t in threads)
            + ' |')
    reused = [m['name'] for m in result['members'] if 'reused_from' in m]
    if reused:
        commands = list(dict.fromkeys(c for r in result['reused'] for c in r['commands']))
        lines += ['', f"Metrics of {len(reused)} of the {len(result['members'])} trained networks taken from "
                  f"earlier results ({', '.join(r['path'] for r in result['reused'])}; --reuse), which were trained "
                  "and tested by " + '; '.join(f'`{c}`' for c in commands) + '. Latency measured in this run.']
    if result.get('untrained'):
        lines += ['', "Not in the table (not trained, or training not finished; --skip-untrained): "
                  f"{', '.join(result['untrained'])}."]
    return '\n'.join(lines) + '\n'


def plot(result, path):
    """Mean PSNR against multiply-adds and against latency (one panel per thread count): the plain widths joined
    into the frontier, each network with its seeds' range, MS³ points labelled with their distance."""
    require('matplotlib', 'study').use('Agg')
    plt = require('matplotlib.pyplot', 'study')
    threads = result['latency']['threads']
    panels = [('macs', None, f"multiply-adds, G ({result['complexity_input']})")] + [
        ('latency', t, f"latency, ms ({result['latency']['input']}, {t} thread{'s' if t > 1 else ''})")
        for t in threads]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False)
    markers = {1: 'o', 2: 's', 3: '^', 4: 'D'}
    for ax, (kind, t, xlabel) in zip(axes[0], panels):
        for n in sorted({c['n_scales'] for c in result['configs']}):
            group = [c for c in result['configs'] if c['n_scales'] == n]
            xs = [c['macs'] / 1e9 if kind == 'macs' else c['latency_ms'][t] for c in group]
            ys = [c['psnr'][PSNR_MEAN]['mean'] for c in group]
            low = [c['psnr'][PSNR_MEAN]['mean'] - c['psnr'][PSNR_MEAN]['min'] for c in group]
            high = [c['psnr'][PSNR_MEAN]['max'] - c['psnr'][PSNR_MEAN]['mean'] for c in group]
            order = sorted(range(len(xs)), key=xs.__getitem__)
            bars = ax.errorbar([xs[i] for i in order], [ys[i] for i in order], yerr=[[low[i] for i in order],
                               [high[i] for i in order]], marker=markers.get(n, 'o'), capsize=3,
                               linestyle='none' if n == 1 else ':', label='plain' if n == 1 else f'MS³ n={n}')
            if n == 1:  # the frontier joins the plain widths that no other plain width dominates
                ax.plot(*zip(*frontier_points(list(zip(xs, ys)))), color=bars[0].get_color(), label='plain frontier')
            for c, x, y in zip(group, xs, ys):
                text = f"{c['width']}"
                if n > 1:
                    delta = c['delta_macs'][PSNR_MEAN] if kind == 'macs' else c['delta_latency'][t][PSNR_MEAN]
                    text += f" ({delta['mean']:+.2f} dB)" if delta else ' (outside)'
                ax.annotate(text, (x, y), textcoords='offset points', xytext=(5, -12 if n > 1 else 5), fontsize=8)
        ax.set_xscale('log')
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which='both')
    axes[0][0].set_ylabel(f"PSNR on Y, mean of {' / '.join(result['sets'])} (dB)")
    axes[0][0].legend(fontsize=8, loc='lower right')
    budget = result['budget']
    fig.suptitle(f"{result['study']}: {budget['iterations']} iterations, seeds {', '.join(map(str, result['seeds']))}"
                 " (bars: min–max over seeds; labels: width, ΔPSNR to the plain line)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def learning_curve(results):
    """{network key: {iterations: seed_summary of mean PSNR}} over several frontier results of one family trained
    for different numbers of iterations, and the distance of each MS³ network to the plain line at each budget."""
    curve = {}
    for result in sorted(results, key=lambda r: r['budget']['iterations']):
        iters = result['budget']['iterations']
        for c in result['configs']:
            entry = curve.setdefault(c['key'], dict(n_scales=c['n_scales'], width=c['width'], macs=c['macs'],
                                                    psnr={}, delta_macs={}))
            entry['psnr'][iters] = c['psnr'][PSNR_MEAN]
            if c['n_scales'] > 1:
                entry['delta_macs'][iters] = c['delta_macs'][PSNR_MEAN]
    return curve


def _effective_ms3_options(result):
    """A frontier result's MS³ options as they act: an option given at a default that has never changed is the same
    network as the option left out (``study.without_spelled_out_defaults``)."""
    types = {m['network_g']['type'] for m in result.get('members', []) if m.get('n_scales', 1) > 1}
    options = dict(result['ms3_options'])
    for network_type in sorted(types):
        options = without_spelled_out_defaults(network_type, options)
    return options


def _curve_task(result):
    """What a frontier result restores: task, scale, degradation (the noise level, for example; the budget does not
    hold it) and the MS³ interaction."""
    return (result.get('task'), result.get('scale'), recorded_degradation(result),
            result.get('interaction', 'adjacent'))


def learning_curve_result(paths, name):
    """The learning curve of the frontier results (JSON files written by this module) at ``paths``: one family,
    one recipe but for the number of iterations. Returns a JSON-able result named ``name``."""
    results = []
    for path in paths:
        with open(path) as f:
            results.append(json.load(f))
    # The tested weights follow from the number of iterations (raw weights while BasicSR's EMA still holds much of
    # the initialisation, the EMA after: study.tested_param_key), so they may differ between budgets.
    per_budget = ('iterations', 'tested_weights')
    recipe = {k: v for k, v in results[0]['budget'].items() if k not in per_budget}
    ms3_options = _effective_ms3_options(results[0])
    task = _curve_task(results[0])
    for path, result in zip(paths, results):
        other = {k: v for k, v in result['budget'].items() if k not in per_budget}
        if (other != recipe or result['sets'] != results[0]['sets'] or _effective_ms3_options(result) != ms3_options
                or _curve_task(result) != task):
            raise ValueError(f'{path} is not of the same family as {paths[0]}: a learning curve compares one recipe '
                             'at several numbers of iterations (budget, task and degradation, test sets and MS³ '
                             'options must agree).')
    results.sort(key=lambda r: r['budget']['iterations'])
    budgets = [r['budget']['iterations'] for r in results]
    if len(set(budgets)) != len(budgets):
        raise ValueError(f'Two results at the same number of iterations ({budgets}): give one per budget.')
    # Budgets as text keys, as they read back from the JSON file.
    return dict(study=name, recipe=recipe, sets=results[0]['sets'], ms3_options=ms3_options,
                budgets=budgets, seeds={str(r['budget']['iterations']): r['seeds'] for r in results},
                tested_weights={str(r['budget']['iterations']): r['budget']['tested_weights'] for r in results},
                sources=[osp.relpath(osp.abspath(p), REPO_ROOT) for p in paths],
                command='python scripts/learning_curve.py ' + ' '.join(osp.relpath(osp.abspath(p), REPO_ROOT)
                                                                       for p in paths) + f' --name {name}',
                curve=json.loads(json.dumps(learning_curve(results))))


def _curve_cell(entry, field, iters, signed=False):
    if str(iters) not in entry[field]:
        return '–'  # not trained at that budget
    return _fmt_summary(entry[field][str(iters)], signed)  # None: 'outside'


def learning_curve_markdown(result):
    """One row per network: mean PSNR (mean [min, max] over seeds) at each budget, then the MS³ networks'
    distance to the plain line at equal multiply-adds at each budget."""
    budgets = result['budgets']
    lines = [
        f"**{result['study']}** — the same family and recipe ({result['recipe']['dataset']}, batch "
        f"{result['recipe']['batch']}, HR patch {result['recipe']['gt_size']}, Adam {result['recipe']['lr']:g} + "
        f"{result['recipe']['scheduler']}) at " + ', '.join(f'{b:,}' for b in budgets) + ' iterations; seeds: ' +
        '; '.join(f"{b:,}: {', '.join(map(str, result['seeds'][str(b)]))}" for b in budgets) +
        '; tested weights: ' + '; '.join(f"{b:,}: `{result['tested_weights'][str(b)]}`" for b in budgets) +
        (f"; MS³ options {result['ms3_options']}" if result['ms3_options'] else '') + '.',
        '',
        f"Command: `{result['command']}` (from the frontier results {', '.join(result['sources'])}).",
        '',
        f"Mean PSNR on Y over {' / '.join(result['sets'])}, mean [min, max] over seeds; ΔPSNR: distance to the plain "
        "line at equal multiply-adds at that budget ('–': not trained at that budget; 'outside': beyond the plain "
        "widths).",
        '',
        '| Network | Mult-adds | ' + ' | '.join(f'PSNR @ {b:,}' for b in budgets) + ' | ' +
        ' | '.join(f'ΔPSNR @ {b:,}' for b in budgets) + ' |',
        '|---|---:|' + '---:|' * (2 * len(budgets)),
    ]
    for key, entry in sorted(result['curve'].items(), key=lambda kv: (kv[1]['n_scales'], kv[1]['macs'])):
        ms3 = entry['n_scales'] > 1
        label = ('plain' if not ms3 else f"MS³ n={entry['n_scales']}") + f", {entry['width']} ch"
        lines.append(f"| {label} | {entry['macs'] / 1e9:.2f} G | " +
                     ' | '.join(_curve_cell(entry, 'psnr', b) for b in budgets) + ' | ' +
                     ' | '.join(_curve_cell(entry, 'delta_macs', b, signed=True) if ms3 else '–' for b in budgets)
                     + ' |')
    return '\n'.join(lines) + '\n'


def learning_curve_plot(result, path):
    """Mean PSNR against iterations for every network (bars: seeds' range), and the MS³ networks' distance to the
    plain line against iterations."""
    require('matplotlib', 'study').use('Agg')
    plt = require('matplotlib.pyplot', 'study')
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, entry in sorted(result['curve'].items(), key=lambda kv: (kv[1]['n_scales'], kv[1]['macs'])):
        label = ('plain' if entry['n_scales'] == 1 else f"MS³ n={entry['n_scales']}") + f", {entry['width']} ch"
        for ax, field in ((left, 'psnr'), (right, 'delta_macs')):
            points = sorted((int(b), v) for b, v in entry[field].items() if v is not None)
            if not points or (field == 'delta_macs' and entry['n_scales'] == 1):
                continue
            xs, ys = [b for b, _ in points], [v['mean'] for _, v in points]
            err = [[v['mean'] - v['min'] for _, v in points], [v['max'] - v['mean'] for _, v in points]]
            ax.errorbar(xs, ys, yerr=err, marker='o' if entry['n_scales'] == 1 else 's', capsize=3, label=label,
                        linestyle='-' if entry['n_scales'] == 1 else ':')
    for ax in (left, right):
        ax.set_xscale('log')
        ax.set_xlabel('training iterations')
        ax.grid(alpha=0.3, which='both')
    left.set_ylabel(f"PSNR on Y, mean of {' / '.join(result['sets'])} (dB)")
    right.set_ylabel('ΔPSNR to the plain line at equal multiply-adds (dB)')
    right.axhline(0, color='grey', linewidth=0.8)
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.suptitle(f"{result['study']} (bars: min–max over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def learning_curve_main(argv=None):
    """``scripts/learning_curve.py``: the learning curve of frontier results, written as JSON, table and plot."""
    parser = argparse.ArgumentParser(prog='python scripts/learning_curve.py', description=(
        'Learning curve of one frontier family: its frontier results (docs/quality/*_frontier.json, written by '
        'python -m msconv_plugin.frontier) at several numbers of iterations, as one table and plot.'))
    parser.add_argument('results', nargs='+', help='frontier result JSON files, one per number of iterations')
    parser.add_argument('--name', required=True, help='name of the curve (file names)')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'docs', 'quality'), help='where it is written')
    args = parser.parse_args(argv)
    check_results_exist(args.results)
    return write_result(learning_curve_result(args.results, args.name), args.out, learning_curve_markdown,
                        learning_curve_plot)


def check_results_exist(paths):
    """Before any work: every frontier result named on a command line exists (and at least one is named)."""
    missing = [p for p in paths if not osp.isfile(p)]
    if missing or not paths:
        raise FileNotFoundError(f"No such frontier result: {', '.join(missing) or 'none given'} "
                                '(python -m msconv_plugin.frontier writes them to docs/quality).')


def _task_label(result):
    """'sr ×2', 'denoise σ=25', 'deblur': the task of a frontier result or summary row, with its scale or level."""
    extra = f" ×{result['scale']}" if result['task'] == 'sr' else f" {result['degradation']}" if result.get(
        'degradation') else ''
    return result['task'] + extra


def recorded_degradation(result):
    """``degradation_of`` the recipe of a frontier ``result``: recorded in it since 2026-12-05; for an earlier result,
    read from its option file (``plain_options``, relative to the repository, with its ``recipe_overrides``) when
    that file is still there, else ''."""
    if 'degradation' in result:
        return result['degradation']
    path = osp.join(REPO_ROOT, result.get('plain_options') or '')
    if not result.get('plain_options') or not osp.isfile(path):
        return ''
    opt = load_options(path)
    if result.get('recipe_overrides'):
        opt = derive_ablation(opt, 'x', result['recipe_overrides'])
    return degradation_of(opt)


def summary_rows(result, source):
    """One row per MS³ network of a frontier ``result`` (read from ``source``): what it is, what it costs against
    the widest plain network of its study, and its distances to that study's plain line (mean PSNR of the sets)."""
    plain = [c for c in result['configs'] if c['n_scales'] == 1]
    widest = max(plain, key=lambda c: c['macs']) if plain else None
    network = next((m['network_g']['type'] for m in result['members'] if m['n_scales'] == 1), None)
    degradation = recorded_degradation(result)
    rows = []
    for c in result['configs']:
        if c['n_scales'] == 1:
            continue
        rows.append(dict(
            source=source, study=result['study'], network=network, task=result['task'],
            degradation=degradation, scale=result['scale'],
            iterations=result['budget']['iterations'], lr=result['budget']['lr'],
            batch=result['budget']['batch'], gt_size=result['budget']['gt_size'],
            ms3_options=result['ms3_options'], interaction=result['interaction'], n_scales=c['n_scales'],
            width=c['width'], macs=c['macs'], widest_plain=widest['width'] if widest else None,
            macs_share=c['macs'] / widest['macs'] if widest else None,
            seeds=c['psnr'][PSNR_MEAN]['n'], psnr=c['psnr'][PSNR_MEAN], delta_macs=c['delta_macs'][PSNR_MEAN],
            delta_latency={str(t): d[PSNR_MEAN] for t, d in c['delta_latency'].items()},
            latency_ms={str(t): ms for t, ms in c['latency_ms'].items()},
            widest_plain_psnr=widest['psnr'][PSNR_MEAN] if widest else None,
            widest_plain_latency_ms={str(t): ms for t, ms in widest['latency_ms'].items()} if widest else {}))
    return rows


def closest_rows(rows):
    """For each network, task, scale and budget of the summary ``rows``: the index of the MS³ network closest to its
    plain line at equal multiply-adds (highest mean distance), among those measured on the most seeds (a one-seed
    network does not stand in for one measured on three). In the order of ``rows``."""
    groups = {}
    for i, r in enumerate(rows):
        if r['delta_macs'] is not None:
            groups.setdefault((r['network'] or '', r['task'], r['degradation'], r['scale'], r['iterations']),
                              []).append(i)
    closest = []
    for members in groups.values():
        most = max(rows[i]['seeds'] for i in members)
        closest.append(max((i for i in members if rows[i]['seeds'] == most),
                           key=lambda i: rows[i]['delta_macs']['mean']))
    return sorted(closest)


def verdict(delta, target):
    """Where a distance to the plain line (``seed_summary``) puts the MS³ network, in words."""
    if delta['n'] == 1:
        side = 'above' if delta['mean'] > 0 else 'below' if delta['mean'] < 0 else 'on'
        return f'{side} the line (one seed)'
    if delta['mean'] >= target and delta['min'] > 0:
        return f'above the line by the target ({target:+.2f} dB)'
    if delta['min'] > 0:
        return 'above the line on every seed'
    if delta['max'] >= 0:
        return 'level (seeds on both sides of the line)'
    return 'below the line on every seed'


def _numbers_in_order(text):
    """A sort key for ``text`` that orders the numbers in it by value ('σ=25' before 'σ=100')."""
    return [(0, int(part), '') if part.isdigit() else (1, 0, part) for part in re.split(r'(\d+)', text or '')]


def summary_result(paths, name, target=QUALITY_TARGET, command=None):
    """Every MS³ network of the frontier results (JSON files written by this module) at ``paths``, one row each,
    ordered by task, scale, budget and learning rate, then by distance to the plain line at equal multiply-adds
    (closest first). Counts the networks whose mean distance reaches ``target`` (dB) and those with at least one
    seed above the line. Returns a JSON-able result named ``name``; ``command`` (default: the one naming every
    path) is the command recorded with it."""
    sources = [osp.relpath(osp.abspath(p), REPO_ROOT) for p in paths]
    rows = []
    for path, source in zip(paths, sources):
        with open(path) as f:
            result = json.load(f)
        if 'configs' not in result or 'budget' not in result:
            raise ValueError(f'{path} is not a frontier result (python -m msconv_plugin.frontier writes them).')
        rows += summary_rows(result, source)
    rows.sort(key=lambda r: (r['network'] or '', r['task'], _numbers_in_order(r['degradation']), r['scale'],
                             r['iterations'], r['lr'], r['batch'], r['gt_size'], r['delta_macs'] is None,
                             -(r['delta_macs'] or {}).get('mean', 0.0)))
    measured = [r['delta_macs'] for r in rows if r['delta_macs'] is not None]
    return dict(study=name, target=target, sources=sources,
                command=command or f"python scripts/frontier_summary.py {' '.join(sources)} --name {name}",
                threads=sorted({t for r in rows for t in r['delta_latency']}, key=int), rows=rows,
                measured=len(measured), reach_target=sum(d['mean'] >= target for d in measured),
                a_seed_above=sum(d['max'] > 0 for d in measured),
                closest=closest_rows(rows))


def _summary_task(row):
    return f"{row['network']} {_task_label(row)}"


def _summary_network(row, lr=None):
    options = {} if lr is None else dict(lr=f'{lr:g}')
    options.update(row['ms3_options'])
    if row['interaction'] != 'adjacent':
        options['interaction'] = row['interaction']
    return (f"n={row['n_scales']}, {row['width']} ch" +
            (' (' + ', '.join(f'{k}={v}' for k, v in options.items()) + ')' if options else ''))


def _recipe(row):
    """'8 × 32': the batch and HR patch size a summary row's networks were trained with."""
    return f"{row['batch']} × {row['gt_size']}"


def _ratio(numerator, denominator):
    return f'{numerator / denominator:.2f}×' if numerator and denominator else '–'


def closest_markdown(result):
    """The table of :func:`closest_rows`: per task and budget, the MS³ network closest to its plain line, its
    distances (equal multiply-adds, equal latency), and what it gives against the widest (full) plain network."""
    threads = result['threads']
    lines = [
        '| Task | Iterations (batch × HR patch) | Closest MS³ network (lr, options) | Seeds | ΔPSNR @ equal MACs | '
        'ΔPSNR @ equal latency ' + ' / '.join(threads) + ' thr | Verdict at equal MACs | Against the full plain '
        'network: ΔPSNR, share of its mult-adds, × its speed at ' + ' / '.join(threads) + ' thr |',
        '|---|---:|---|---:|---:|---:|---|---|',
    ]
    for r in (result['rows'][i] for i in result['closest']):
        if r['widest_plain_psnr'] is None:
            full = '–'
        else:
            full = (f"{r['psnr']['mean'] - r['widest_plain_psnr']['mean']:+.2f} dB, {100 * r['macs_share']:.0f}%, " +
                    ' / '.join(_ratio(r['widest_plain_latency_ms'].get(t), r['latency_ms'].get(t)) for t in threads) +
                    f" ({r['widest_plain']} ch)")
        lines.append(
            f"| {_summary_task(r)} | {r['iterations']:,} ({_recipe(r)}) | {_summary_network(r, lr=r['lr'])} | "
            f"{r['seeds']} | "
            f"{_fmt_summary(r['delta_macs'], signed=True)} | " +
            ' / '.join('outside' if r['delta_latency'].get(t) is None else f"{r['delta_latency'][t]['mean']:+.2f}"
                       for t in threads) +
            f" | {verdict(r['delta_macs'], result['target'])} | {full} |")
    return '\n'.join(lines) + '\n'


def summary_markdown(result):
    """The MS³ network closest to its plain line per task and budget, then one row per MS³ network: task, budget,
    options, cost, seeds, mean PSNR and distances to the plain line."""
    threads = result['threads']
    lines = [
        f"**{result['study']}** — every MS³ network of {len(result['sources'])} frontier studies against its own "
        f"study's plain line (same recipe, same seeds, same run for the latency). Target: "
        f"{result['target']:+.2f} dB at equal multiply-adds (mean over seeds). **{result['reach_target']} of the "
        f"{result['measured']} networks inside their plain line's range reach it; {result['a_seed_above']} have at "
        "least one seed above the line.**",
        '',
        f"Command: `{result['command']}`",
        '',
        '## The closest MS³ network per task and budget',
        '',
        'Among the networks measured on the most seeds of their task and budget; ΔPSNR mean [min, max] over seeds '
        '(equal latency: the mean); against the full plain network (the widest of its study): the difference of the '
        'mean PSNRs, the share of its multiply-adds and its latency over the MS³ network\'s (above 1×: MS³ is faster), '
        'measured in the same run.',
        '',
        closest_markdown(result),
        '## Every MS³ network',
        '',
        "PSNR: mean of the study's test sets, mean [min, max] over seeds. ΔPSNR: minus the plain line's at the same "
        "multiply-adds or the same latency, per seed, mean [min, max] ('outside': beyond the plain widths). Mult-adds "
        "of the network, and as a share of the widest plain network of its study. Options not listed were at their "
        "defaults of the time (each network's record in its study says which). Latencies come from each study's own "
        "run (machines differ between studies); each study's table names the command that trained it.",
        '',
        '| Task | Iterations, lr, batch × HR patch | MS³ network (options) | Mult-adds | Seeds | mean PSNR | '
        'ΔPSNR @ equal MACs | ' +
        ' | '.join(f'ΔPSNR @ equal latency {t} thr' for t in threads) + ' | Study |',
        '|---|---|---|---:|---:|---:|---:|' + '---:|' * len(threads) + '---|',
    ]
    for r in result['rows']:
        stem = osp.splitext(osp.basename(r['source']))[0]
        share = f"{r['macs'] / 1e9:.2f} G" + (f" ({100 * r['macs_share']:.0f}% of {r['widest_plain']} ch)"
                                              if r['macs_share'] is not None else '')
        lines.append(
            f"| {_summary_task(r)} | {r['iterations']:,}, {r['lr']:g}, {_recipe(r)} | {_summary_network(r)} | "
            f"{share} | {r['seeds']} | {_fmt_summary(r['psnr'])} | {_fmt_summary(r['delta_macs'], signed=True)} | " +
            ' | '.join(_fmt_summary(r['delta_latency'][t], signed=True) if t in r['delta_latency'] else '–'
                       for t in threads) + f" | [{stem}]({stem}.md) |")
    return '\n'.join(lines) + '\n'


def summary_plot(result, path):
    """ΔPSNR at equal multiply-adds of every MS³ network inside its plain line's range (bars: min–max over seeds),
    with the plain line (0) and the target."""
    require('matplotlib', 'study').use('Agg')
    plt = require('matplotlib.pyplot', 'study')
    rows = [r for r in result['rows'] if r['delta_macs'] is not None]
    fig, ax = plt.subplots(figsize=(12, 1.6 + 0.28 * max(len(rows), 1)))
    ys = list(range(len(rows)))[::-1]
    means = [r['delta_macs']['mean'] for r in rows]
    err = [[r['delta_macs']['mean'] - r['delta_macs']['min'] for r in rows],
           [r['delta_macs']['max'] - r['delta_macs']['mean'] for r in rows]]
    ax.errorbar(means, ys, xerr=err, fmt='o', capsize=3)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{_summary_task(r)}, {r['iterations']:,} it, lr {r['lr']:g}, batch × patch {_recipe(r)}: "
                        f"{_summary_network(r)}, {r['seeds']} seed{'s' if r['seeds'] > 1 else ''}" for r in rows],
                       fontsize=7)
    ax.axvline(0, color='grey', linewidth=1, label='plain line (narrowing)')
    ax.axvline(result['target'], color='green', linestyle='--', linewidth=1, label=f"target {result['target']:+.2f} dB")
    ax.set_xlabel('ΔPSNR to the plain line at equal multiply-adds (dB, mean PSNR of the test sets)')
    ax.grid(alpha=0.3, axis='x')
    ax.legend(fontsize=8, loc='lower left')
    ax.set_title(f"{result['study']}: {result['reach_target']} of {result['measured']} MS³ networks reach the target"
                 '\n(bars: min–max over seeds)', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_main(argv=None):
    """``scripts/frontier_summary.py``: every MS³ network of the frontier results, written as JSON, table and plot."""
    parser = argparse.ArgumentParser(prog='python scripts/frontier_summary.py', description=(
        'One table and plot of every MS³ network of several frontier results (python -m msconv_plugin.frontier): '
        'its distance to its own study\'s plain line, against the target.'))
    parser.add_argument('results', nargs='*', help='frontier result JSON files (default: every '
                        'docs/quality/*_frontier*.json)')
    parser.add_argument('--name', default='frontier_summary', help='name of the summary (file names)')
    parser.add_argument('--target', type=float, default=QUALITY_TARGET, help='dB above the plain line')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'docs', 'quality'), help='where it is written')
    args = parser.parse_args(argv)
    results = args.results or sorted(glob.glob(osp.join(REPO_ROOT, 'docs', 'quality', '*_frontier*.json')))
    command = ' '.join(['python scripts/frontier_summary.py'] + [osp.relpath(osp.abspath(p), REPO_ROOT)
                                                                  for p in args.results] +
                       ([] if args.name == 'frontier_summary' else ['--name', args.name]) +
                       ([] if args.target == QUALITY_TARGET else ['--target', f'{args.target:g}']))
    check_results_exist(results)
    return write_result(summary_result(results, args.name, args.target, command), args.out, summary_markdown,
                        summary_plot)


def parse_ms3_widths(texts):
    """``['2:64,90', '3:84']`` → ``{2: [64, 90], 3: [84]}``."""
    widths = {}
    for text in texts:
        n, sep, body = text.partition(':')
        try:
            widths[int(n)] = [int(w) for w in body.split(',')]
            if not sep or int(n) < 2 or not widths[int(n)]:
                raise ValueError
        except ValueError:
            raise ValueError(f"--ms3 takes '<n_scales>:<width>[,<width>...]' with n_scales >= 2, got {text!r}.")
    return widths


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='python -m msconv_plugin.frontier', description=__doc__.split('\n')[0])
    parser.add_argument('--opt', required=True, help="the plain network's BasicSR training options (the recipe)")
    parser.add_argument('--widths', type=int, nargs='*', default=[32, 46, 64], help='plain widths (num_feat)')
    parser.add_argument('--ms3', action='append', default=[], metavar='N:W[,W...]',
                        help="MS³ conversions with N scales at widths W (repeatable), e.g. --ms3 2:64,90")
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--ms3-options', default='', metavar='KEY=VALUE[,...]',
                        help="network options of every converted network, e.g. cross_scale_init=0,upsample=bilinear")
    parser.add_argument('--ms3-tag', help='added to the converted networks\' names (variants of --ms3-options)')
    parser.add_argument('--interaction', default='adjacent', choices=('adjacent', 'full'))
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE[,...]',
                        help='change the recipe for every member (dotted keys, e.g. train.optim_g.lr=2e-4); '
                        'needs --name')
    parser.add_argument('--name', help="the recipe's name (default: the option file's name)")
    parser.add_argument('--benchmark-root', default=DEFAULT_BENCHMARK_ROOT, help='folder holding the test sets')
    parser.add_argument('--sets', nargs='+', default=list(TEST_SETS))
    parser.add_argument('--threads', type=int, default=1, help='OMP threads per training/test process')
    parser.add_argument('--jobs', type=int, default=1, help='members trained side by side')
    parser.add_argument('--latency-size', type=int, default=128, help='LR side of the timed input')
    parser.add_argument('--latency-threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--latency-repeats', type=int, default=7)
    parser.add_argument('--retest', action='store_true', help='test every network again, even when unchanged')
    parser.add_argument('--skip-untrained', action='store_true',
                        help='train nothing; leave out the members whose training has not finished')
    parser.add_argument('--reuse', nargs='+', default=[], metavar='RESULT.json',
                        help='take the metrics of members found in these earlier frontier results instead of training '
                        'and testing them (every network is timed again)')
    parser.add_argument('--out', default=osp.join(REPO_ROOT, 'docs', 'quality'), help='where results are written')
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None):
    args = parse_args(argv)
    overrides = {}
    for text in args.set:
        overrides.update(parse_overrides(text))
    result = run(args.opt, args.widths, parse_ms3_widths(args.ms3), args.seeds,
                 parse_overrides(args.ms3_options) if args.ms3_options else None, args.interaction, args.ms3_tag,
                 overrides, args.name, args.benchmark_root, args.sets, args.threads, args.jobs, args.latency_size,
                 args.latency_threads, args.latency_repeats, args.retest, args.skip_untrained,
                 command='python -m msconv_plugin.frontier ' + ' '.join(args.argv), reuse=args.reuse)
    return write_result(result, args.out, markdown, plot)


if __name__ == '__main__':
    sys.exit(run_cli(main))
