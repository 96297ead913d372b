"""Timing networks: latency, throughput, training-step time and peak memory, interleaved so that machine noise hits
every setting alike (``interleaved_medians``), and operator profiles. ``scripts/benchmark_speed.py`` (docs/
benchmarks.md) and the demo time networks with it.
"""
import copy
import statistics
import time

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch.profiler import ProfilerActivity, profile

from .cli import UserError
from .complexity import NETWORKS, WIDTH_KEYS, count, equal_macs_width, ms3_kwargs, narrowed, plain_kwargs
from .inference import compile_for_inference

FORMATS = {'nchw': torch.contiguous_format, 'channels_last': torch.channels_last}


def settings_for(device, formats=tuple(FORMATS)):
    precisions = ['fp32', 'amp'] if device == 'cuda' else ['fp32']
    return [(p, f) for p in precisions for f in formats]


def build_variants(name, scale, n_scales_list, interaction, scopes, equal_macs=True, macs_size=32, upsamples=(),
                   plain_widths=()):
    """The networks one benchmark times: ``{variant: (type, constructor arguments)}`` and, for each MS³ variant,
    the name of its plain network of equal multiply-adds (``{MS³ variant: plain variant}``).

    ``plain`` is the full plain network; ``n=<n>[ <scope>][ <upsample>]`` its conversions, one per scope of ``scopes``
    that the network offers (else its default scope) and per up-sampling between scales of ``upsamples`` (else the
    default; named only when given). With ``equal_macs``, each conversion also gets the plain network narrowed to the
    width whose multiply-adds (``complexity.count`` on a ``macs_size``² input; multiply-adds grow with the pixel count
    alike for both) are closest to the conversion's: ``plain f<width>`` — the network a user would otherwise narrow
    to. Each width of ``plain_widths`` adds the plain network narrowed to it, ``plain f<width>`` too: a width that
    suits the hardware (a multiple of 16 on the CPU) beside an equal-multiply-add width that may not (``UserError``
    for a width the network cannot take).
    """
    plain_type, kwargs = plain_kwargs(name, scale)
    variants = {'plain': (plain_type, kwargs)}
    for n in n_scales_list:
        for scope in [s for s in scopes if s in NETWORKS[name][4]] or [None]:  # None: the network's default scope
            for upsample in upsamples or [None]:  # None: the default up-sampling
                label = f'n={n}' + ''.join(f' {tag}' for tag in (scope, upsample) if tag)
                variants[label] = ms3_kwargs(name, scale, n, interaction, scope, upsample)
    equal_to = {}
    if equal_macs:
        for variant, (net_type, net_kwargs) in list(variants.items())[1:]:
            target = count(ARCH_REGISTRY.get(net_type)(**net_kwargs).eval(), (3, macs_size, macs_size))[0]
            width = equal_macs_width(name, kwargs, target, macs_size)
            equal_to[variant] = f'plain f{width}'
            variants.setdefault(equal_to[variant], (plain_type, narrowed(name, kwargs, width)))
    check_plain_widths(name, scale, plain_widths)
    full = kwargs[WIDTH_KEYS.get(plain_type, ('num_feat', ))[0]]
    for width in plain_widths:
        if width != full:
            variants.setdefault(f'plain f{width}', (plain_type, narrowed(name, kwargs, width)))
    return variants, equal_to


def check_plain_widths(name, scale, widths):
    """``UserError`` naming ``--plain-widths`` for a width the plain network ``name`` cannot be narrowed to."""
    plain_type, kwargs = plain_kwargs(name, scale)
    full, step = kwargs[WIDTH_KEYS.get(plain_type, ('num_feat', ))[0]], kwargs.get('group', 1)
    for width in widths:
        if not 0 < width <= full or width % step:
            raise UserError(f'--plain-widths {width}: {name} takes widths from {step} to {full} in steps of {step}')


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


def make_calls(model, device, precision, fmt, size, batch, train_size, train_batch, compile=False):
    """Closures for one inference call and one training step in one setting; with ``compile`` the inference call
    runs ``inference.compile_for_inference(model)``, as ``python -m msconv_plugin.inference --compile`` does (the
    training step stays eager)."""
    model = copy.deepcopy(model).to(device=device, memory_format=FORMATS[fmt])
    net = compile_for_inference(model) if compile else model
    x = torch.rand(batch, 3, size, size, device=device).to(memory_format=FORMATS[fmt])
    scale = model(torch.rand(1, 3, 8, 8, device=device)).shape[-1] // 8
    lq = torch.rand(train_batch, 3, train_size, train_size, device=device).to(memory_format=FORMATS[fmt])
    gt = torch.rand(train_batch, 3, train_size * scale, train_size * scale, device=device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device, enabled=device == 'cuda' and precision == 'amp')

    def infer():
        with torch.no_grad(), autocast(device, precision):
            net(x)
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
    variants, equal_to = build_variants(name, scale, args.n_scales, args.interaction, args.scopes,
                                        getattr(args, 'equal_macs', True), upsamples=getattr(args, 'upsample', ()),
                                        plain_widths=getattr(args, 'plain_widths', ()))
    rows, infer_calls, train_calls = {}, {}, {}
    for variant, (net_type, kwargs) in variants.items():
        model = ARCH_REGISTRY.get(net_type)(**kwargs)
        for precision, fmt in settings_for(device, getattr(args, 'formats', None) or FORMATS):
            key = (variant, precision, fmt)
            infer_calls[key], train_calls[key] = make_calls(model, device, precision, fmt, size, args.batch,
                                                            args.train_size, args.train_batch,
                                                            getattr(args, 'compile', False))
            rows[key] = dict(network=name, variant=variant, equal_macs_plain=equal_to.get(variant), type=net_type,
                             kwargs=kwargs, scale=scale, size=size,
                             device=device, precision=precision, memory_format=fmt,
                             compiled=getattr(args, 'compile', False), batch=args.batch,
                             train_batch=args.train_batch, train_size=args.train_size)
    latency = interleaved_medians(infer_calls, args.warmup, args.repeats)
    step = interleaved_medians(train_calls, 1, args.train_repeats)
    for key, row in rows.items():
        row.update(latency_ms=latency[key] * 1e3, throughput=args.batch / latency[key],
                   train_step_ms=step[key] * 1e3,
                   # on the CPU a compiled graph allocates outside the profiler's view: no inference peak then
                   peak_memory_mb=None if row['compiled'] and device == 'cpu' else peak_memory_mb(
                       infer_calls[key], device),
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
    """Each variant in its fastest setting, with ratios against the full plain network's fastest setting and, for
    an MS³ variant, against its plain network of equal multiply-adds (``..._vs_equal_macs``, None without one)."""
    groups = {}
    for row in rows:
        groups.setdefault((row['network'], row['scale'], row['size'], row['device'], row['variant']), []).append(row)
    best = {group: (min(found, key=lambda r: r['latency_ms']), min(found, key=lambda r: r['train_step_ms']))
            for group, found in groups.items()}
    summary = []
    for (network, scale, size, device, variant), (row, train) in best.items():
        plain, plain_train = best[(network, scale, size, device, 'plain')]
        equal = best.get((network, scale, size, device, row.get('equal_macs_plain')))
        summary.append(
            dict(network=network, scale=scale, size=size, device=device, variant=variant,
                 equal_macs_plain=row.get('equal_macs_plain'),
                 setting=f"{row['precision']} {row['memory_format']}", latency_ms=row['latency_ms'],
                 throughput=row['throughput'], speedup=plain['latency_ms'] / row['latency_ms'],
                 speedup_vs_equal_macs=equal[0]['latency_ms'] / row['latency_ms'] if equal else None,
                 peak_memory_mb=row['peak_memory_mb'],
                 memory_ratio=(None if row['peak_memory_mb'] is None else
                               row['peak_memory_mb'] / plain['peak_memory_mb']),
                 train_setting=f"{train['precision']} {train['memory_format']}", train_step_ms=train['train_step_ms'],
                 train_speedup=plain_train['train_step_ms'] / train['train_step_ms'],
                 train_speedup_vs_equal_macs=equal[1]['train_step_ms'] / train['train_step_ms'] if equal else None,
                 train_peak_memory_mb=train['train_peak_memory_mb'],
                 train_memory_ratio=train['train_peak_memory_mb'] / plain_train['train_peak_memory_mb']))
    return summary


def _mb(value):
    return '–' if value is None else f'{value:.1f}'


def _share(value):
    return '–' if value is None else f'{value:.0%}'


def markdown(rows, summary, env):
    lines = [
        f"Machine: {env['machine']}" + (f" ({env['cpu_capability']})" if env.get('cpu_capability') else '') +
        f"; torch {env['torch']}; {env['threads']} threads; device {env['device']}"
        + ('; inference through `torch.compile` (inductor, freezing), training steps eager.' if env.get('compiled')
           else '; eager.'), '',
        '### Every setting', '',
        '| network | × | LR size | variant | setting | latency ms | images/s | peak MB | train step ms | '
        'train peak MB |', '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        lines.append(f"| {r['network']} | {r['scale']} | {r['size']} | {r['variant']} | {r['precision']} "
                     f"{r['memory_format']} | {r['latency_ms']:.1f} | {r['throughput']:.2f} | "
                     f"{_mb(r['peak_memory_mb'])} | {r['train_step_ms']:.1f} | {r['train_peak_memory_mb']:.1f} |")
    lines += [
        '', "### Each variant in its fastest setting (speed-ups against the full plain network's fastest and "
        "against the plain network of equal multiply-adds, `plain f<width>`)", '',
        '| network | × | LR size | variant | setting | latency ms | speed-up | vs equal-MAC plain | peak MB | of plain '
        '| train step ms | train speed-up | vs equal-MAC plain | train peak MB | of plain |', '|---' * 15 + '|'
    ]

    def versus(s, key):
        return f"{s[key]:.2f}× ({s['equal_macs_plain']})" if s[key] is not None else '–'

    for s in summary:
        lines.append(f"| {s['network']} | {s['scale']} | {s['size']} | {s['variant']} | {s['setting']} | "
                     f"{s['latency_ms']:.1f} | {s['speedup']:.2f}× | {versus(s, 'speedup_vs_equal_macs')} | "
                     f"{_mb(s['peak_memory_mb'])} | {_share(s['memory_ratio'])} | {s['train_step_ms']:.1f} | "
                     f"{s['train_speedup']:.2f}× | {versus(s, 'train_speedup_vs_equal_macs')} | "
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
