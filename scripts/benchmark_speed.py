"""Speed and memory of plain networks against their MS³ conversions, measured side by side in one run.

    python scripts/benchmark_speed.py                                   # EDSR-M and CARN, x2, 128x128, CPU
    python scripts/benchmark_speed.py --networks EDSR-M MSRResNet RRDBNet CARN CARN-M --scales 2 4 \\
        --sizes 64 128 256 --json results/benchmark.json

For every network, scale and LR size, the plain network and its conversions (``--n-scales``, default 2 and 3) run
in every setting: on the CPU fp32 in NCHW and channels_last; on CUDA (when present) fp32 and AMP (fp16), both
formats. Timings are interleaved (one call of each setting per round, ``--repeats`` rounds after ``--warmup``) so
that machine noise hits every setting alike; we report medians. Each variant is then reported in its fastest
setting, and its speed-up is the plain network's fastest median latency over the variant's fastest.

Measured per setting: inference latency (batch ``--batch``) and throughput (images/s); one training step (forward,
L1 loss, backward, Adam step; batch ``--train-batch`` of ``--train-size`` LR patches) time; peak memory of both.
Peak memory is the peak of tensor memory allocated during the call beyond what was live before it: CUDA's
allocator statistics on the GPU, and on the CPU the allocation timeline of ``torch.profiler`` (profile_memory).
With ``--profile PASSES``, each variant's fastest inference setting is also profiled operator by operator
(``torch.profiler``, self CPU time per call of the costliest ``--profile-top`` operators): where a conversion falls
short of its operation count, this shows what the time goes to.
"""
import argparse
import copy
import json
import os.path as osp
import platform
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import msconv_plugin  # noqa: F401, E402  (before anything of BasicSR)
from msconv_plugin.cli import run  # noqa: E402

import torch  # noqa: E402
from basicsr.utils.registry import ARCH_REGISTRY  # noqa: E402
from model_complexity import NETWORKS  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

FORMATS = {'nchw': torch.contiguous_format, 'channels_last': torch.channels_last}


def settings_for(device):
    precisions = ['fp32', 'amp'] if device == 'cuda' else ['fp32']
    return [(p, f) for p in precisions for f in FORMATS]


def build_variants(name, scale, n_scales_list, interaction, scopes):
    plain_type, ms3_type, base_kwargs, scale_key, offered = NETWORKS[name]
    kwargs = {**base_kwargs, scale_key: scale}
    variants = {'plain': (plain_type, kwargs)}
    for n in n_scales_list:
        for scope in [s for s in scopes if s in offered] or [None]:  # None: the network's default scope
            ms3_kwargs = dict(kwargs, n_scales=n, interaction=interaction)
            if scope is not None:
                ms3_kwargs['scope'] = scope
            variants[f'n={n}' + (f' {scope}' if scope else '')] = (ms3_type, ms3_kwargs)
    return variants


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def autocast(device, precision):
    return torch.autocast(device, dtype=torch.float16 if device == 'cuda' else torch.bfloat16,
                          enabled=precision == 'amp')


def peak_memory_mb(fn, device):
    """Peak of tensor memory allocated while ``fn`` runs, beyond what was live before it."""
    if device == 'cuda':
        sync(device)
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage  # allocations minus frees, each counted once (self)
        peak = max(peak, live)
    return peak / 2**20


def make_calls(model, device, precision, fmt, size, batch, train_size, train_batch):
    """Closures for one inference call and one training step in one setting."""
    model = copy.deepcopy(model).to(device=device, memory_format=FORMATS[fmt])
    x = torch.rand(batch, 3, size, size, device=device).to(memory_format=FORMATS[fmt])
    scale = model(torch.rand(1, 3, 8, 8, device=device)).shape[-1] // 8
    lq = torch.rand(train_batch, 3, train_size, train_size, device=device).to(memory_format=FORMATS[fmt])
    gt = torch.rand(train_batch, 3, train_size * scale, train_size * scale, device=device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device, enabled=device == 'cuda' and precision == 'amp')

    def infer():
        with torch.no_grad(), autocast(device, precision):
            model(x)
        sync(device)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = torch.nn.functional.l1_loss(model(lq).float(), gt)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sync(device)

    return infer, train_step


def interleaved_medians(calls, warmup, repeats):
    """Median seconds per call; one call of each per round, so that noise hits all alike."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def benchmark(name, scale, size, args, device):
    torch.manual_seed(0)
    variants = build_variants(name, scale, args.n_scales, args.interaction, args.scopes)
    rows, infer_calls, train_calls = {}, {}, {}
    for variant, (net_type, kwargs) in variants.items():
        model = ARCH_REGISTRY.get(net_type)(**kwargs)
        for precision, fmt in settings_for(device):
            key = (variant, precision, fmt)
            infer_calls[key], train_calls[key] = make_calls(model, device, precision, fmt, size, args.batch,
                                                            args.train_size, args.train_batch)
            rows[key] = dict(network=name, variant=variant, type=net_type, kwargs=kwargs, scale=scale, size=size,
                             device=device, precision=precision, memory_format=fmt, batch=args.batch,
                             train_batch=args.train_batch, train_size=args.train_size)
    latency = interleaved_medians(infer_calls, args.warmup, args.repeats)
    step = interleaved_medians(train_calls, 1, args.train_repeats)
    for key, row in rows.items():
        row.update(latency_ms=latency[key] * 1e3, throughput=args.batch / latency[key],
                   train_step_ms=step[key] * 1e3,
                   peak_memory_mb=peak_memory_mb(infer_calls[key], device),
                   train_peak_memory_mb=peak_memory_mb(train_calls[key], device))
    if args.profile:  # each variant's fastest inference setting, operator by operator
        for variant in variants:
            key = min((k for k in rows if k[0] == variant), key=lambda k: rows[k]['latency_ms'])
            rows[key]['profile'] = op_profile(infer_calls[key], args.profile, args.profile_top)
    return list(rows.values())


def op_profile(call, passes, top):
    """Where one call's time goes: ``torch.profiler`` over ``passes`` calls, operators by self CPU time.

    Returns the total self time and the ``top`` operators (calls, self milliseconds and share), all per call.
    """
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(passes):
            call()
    stats = sorted(((e.key, e.count, e.self_cpu_time_total) for e in prof.key_averages()), key=lambda s: -s[2])
    total = sum(s[2] for s in stats)
    return dict(passes=passes, total_self_ms=total / 1e3 / passes,
                ops=[dict(op=op, calls=count / passes, self_ms=t / 1e3 / passes, share=t / total)
                     for op, count, t in stats[:top]])


def fastest(rows):
    """Each variant in its fastest setting, with ratios against the plain network's fastest setting."""
    best = {}
    for row in rows:
        group = (row['network'], row['scale'], row['size'], row['device'], row['variant'])
        if group not in best or row['latency_ms'] < best[group]['latency_ms']:
            best[group] = row
    summary = []
    for (network, scale, size, device, variant), row in best.items():
        plain = best[(network, scale, size, device, 'plain')]
        train = min((r for r in rows if (r['network'], r['scale'], r['size'], r['device'], r['variant']) ==
                     (network, scale, size, device, variant)), key=lambda r: r['train_step_ms'])
        plain_train = min((r for r in rows if (r['network'], r['scale'], r['size'], r['device'], r['variant']) ==
                           (network, scale, size, device, 'plain')), key=lambda r: r['train_step_ms'])
        summary.append(
            dict(network=network, scale=scale, size=size, device=device, variant=variant,
                 setting=f"{row['precision']} {row['memory_format']}", latency_ms=row['latency_ms'],
                 throughput=row['throughput'], speedup=plain['latency_ms'] / row['latency_ms'],
                 peak_memory_mb=row['peak_memory_mb'], memory_ratio=row['peak_memory_mb'] / plain['peak_memory_mb'],
                 train_setting=f"{train['precision']} {train['memory_format']}", train_step_ms=train['train_step_ms'],
                 train_speedup=plain_train['train_step_ms'] / train['train_step_ms'],
                 train_peak_memory_mb=train['train_peak_memory_mb'],
                 train_memory_ratio=train['train_peak_memory_mb'] / plain_train['train_peak_memory_mb']))
    return summary


def markdown(rows, summary, env):
    lines = [
        f"Machine: {env['machine']}; torch {env['torch']}; {env['threads']} threads; device {env['device']}.", '',
        '### Every setting', '',
        '| network | × | LR size | variant | setting | latency ms | images/s | peak MB | train step ms | '
        'train peak MB |', '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        lines.append(f"| {r['network']} | {r['scale']} | {r['size']} | {r['variant']} | {r['precision']} "
                     f"{r['memory_format']} | {r['latency_ms']:.1f} | {r['throughput']:.2f} | "
                     f"{r['peak_memory_mb']:.1f} | {r['train_step_ms']:.1f} | {r['train_peak_memory_mb']:.1f} |")
    lines += [
        '', '### Each variant in its fastest setting (ratios against the plain network\'s fastest)', '',
        '| network | × | LR size | variant | setting | latency ms | speed-up | peak MB | of plain | '
        'train step ms | train speed-up | train peak MB | of plain |', '|---' * 13 + '|'
    ]
    for s in summary:
        lines.append(f"| {s['network']} | {s['scale']} | {s['size']} | {s['variant']} | {s['setting']} | "
                     f"{s['latency_ms']:.1f} | {s['speedup']:.2f}× | {s['peak_memory_mb']:.1f} | "
                     f"{s['memory_ratio']:.0%} | {s['train_step_ms']:.1f} | {s['train_speedup']:.2f}× | "
                     f"{s['train_peak_memory_mb']:.1f} | {s['train_memory_ratio']:.0%} |")
    profiled = [r for r in rows if r.get('profile')]
    if profiled:
        passes = profiled[0]['profile']['passes']
        lines += [
            '', f'### Inference profile: each variant in its fastest setting, {passes} passes, per pass', '',
            '| network | × | LR size | variant | setting | self CPU ms (all ops) | operator | calls | self ms '
            '| share |',
            '|---' * 10 + '|'
        ]
        for r in profiled:
            prof = r['profile']
            for i, op in enumerate(prof['ops']):
                head = (f"| {r['network']} | {r['scale']} | {r['size']} | {r['variant']} | {r['precision']} "
                        f"{r['memory_format']} | {prof['total_self_ms']:.1f} |") if i == 0 else '| | | | | | |'
                lines.append(f"{head} {op['op']} | {op['calls']:g} | {op['self_ms']:.1f} | {op['share']:.0%} |")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--networks', nargs='+', default=['EDSR-M', 'CARN'], choices=list(NETWORKS))
    parser.add_argument('--scales', nargs='+', type=int, default=[2])
    parser.add_argument('--sizes', nargs='+', type=int, default=[128], help='LR height and width')
    parser.add_argument('--n-scales', nargs='+', type=int, default=[2, 3])
    parser.add_argument('--interaction', default='adjacent', choices=['adjacent', 'full'])
    parser.add_argument('--scopes', nargs='+', default=[], choices=['trunk', 'whole'],
                        help='conversion scopes to measure, where the network offers them (default: its default)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--train-batch', type=int, default=4)
    parser.add_argument('--train-size', type=int, default=48)
    parser.add_argument('--train-repeats', type=int, default=5)
    parser.add_argument('--json', help='also write everything as JSON to this path')
    parser.add_argument('--profile', type=int, default=0, metavar='PASSES',
                        help="also profile each variant's fastest inference setting over PASSES calls (torch.profiler)"
                        ' and list its costliest operators')
    parser.add_argument('--profile-top', type=int, default=8, help='operators listed per profile')
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    env = dict(machine=f'{platform.machine()} {platform.processor() or platform.platform()}',
               python=platform.python_version(), torch=torch.__version__, threads=torch.get_num_threads(),
               device=torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu')
    rows = []
    for name in args.networks:
        for scale in args.scales:
            for size in args.sizes:
                rows += benchmark(name, scale, size, args, args.device)
                print(f'measured {name} x{scale} {size}x{size}', file=sys.stderr, flush=True)
    summary = fastest(rows)
    print(markdown(rows, summary, env))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(env=env, args=vars(args), rows=rows, fastest=summary), f, indent=1)


if __name__ == '__main__':
    sys.exit(run(main))
