"""Speed and memory of plain networks against their MS³ conversions, measured side by side in one run.

    python scripts/benchmark_speed.py                                   # EDSR-M and CARN, x2, 128x128, CPU
    python scripts/benchmark_speed.py --networks EDSR-M MSRResNet RRDBNet CARN CARN-M --scales 2 4 \\
        --sizes 64 128 256 --json results/benchmark.json

For every network, scale and LR size, the plain network, its conversions (``--n-scales``, default 2 and 3) and, for
each conversion, the plain network narrowed to the same multiply-adds (``plain f<width>``; ``--no-equal-macs``
leaves them out) run in every setting: on the CPU fp32 in NCHW and channels_last (``--formats``); on CUDA (when
present) fp32 and AMP (fp16), both formats. Timings are interleaved (one call of each setting per round,
``--repeats`` rounds after ``--warmup``) so that machine noise hits every setting alike; we report medians. Each
variant is then reported in its fastest setting; its speed-up is the full plain network's fastest median latency over
the variant's fastest, and ``vs equal-MAC plain`` the same against the narrowed plain network (the alternative a
user has to MS³).

Measured per setting: inference latency (batch ``--batch``) and throughput (images/s); one training step (forward,
L1 loss, backward, Adam step; batch ``--train-batch`` of ``--train-size`` LR patches) time; peak memory of both.
Peak memory is the peak of tensor memory allocated during the call beyond what was live before it: CUDA's
allocator statistics on the GPU, and on the CPU the allocation timeline of ``torch.profiler`` (profile_memory).
With ``--compile``, every network's inference runs through ``torch.compile`` (inductor with freezing: convolutions
fused with their element-wise neighbours, weights pre-packed; the best-configured CPU deployment), the plain networks
as well as the conversions; the first call, which compiles, falls in the warm-up; training steps stay eager.
``--upsample`` times every conversion with each up-sampling between scales it lists (variants ``n=<n>[ <scope>]
<upsample>``): ``--scales 1 --scopes trunk whole --upsample nearest bilinear`` times the MS3EDSR default (``trunk``,
nearest) beside the network of the shipped x1 option files (``whole``, bilinear). ``--plain-widths`` adds plain
networks of other widths (``plain f<width>``), e.g. 48 channels, which on the CPU runs faster per multiply-add than
the equal-MAC EDSR-42 to 46.
With ``--profile PASSES``, each variant's fastest inference setting is also profiled operator by operator
(``torch.profiler``, self CPU time per call of the costliest ``--profile-top`` operators): where a conversion falls
short of its operation count, this shows what the time goes to.
"""
import argparse
import json
import platform
import sys

import msconv_plugin  # noqa: F401  (before anything of BasicSR)
from msconv_plugin.cli import UserError, run
import torch
from msconv_plugin.benchmark import benchmark, check_plain_widths, fastest, markdown
from msconv_plugin.complexity import NETWORKS
from msconv_plugin.inference import compile_refusal


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--networks', nargs='+', default=['EDSR-M', 'CARN'], choices=list(NETWORKS))
    parser.add_argument('--scales', nargs='+', type=int, default=[2])
    parser.add_argument('--sizes', nargs='+', type=int, default=[128], help='LR height and width')
    parser.add_argument('--n-scales', nargs='+', type=int, default=[2, 3])
    parser.add_argument('--interaction', default='adjacent', choices=['adjacent', 'full'])
    parser.add_argument('--scopes', nargs='+', default=[], choices=['trunk', 'whole'],
                        help='conversion scopes to measure, where the network offers them (default: its default)')
    parser.add_argument('--upsample', nargs='+', default=[], choices=['nearest', 'bilinear', 'learned'],
                        help="up-samplings between scales to measure, each in every conversion (default: the "
                        "network's default, nearest; the shipped x1 option files use bilinear)")
    parser.add_argument('--equal-macs', action=argparse.BooleanOptionalAction, default=True,
                        help='also time, for each conversion, the plain network narrowed to its multiply-adds')
    parser.add_argument('--plain-widths', nargs='+', type=int, default=[], metavar='WIDTH',
                        help='also time the plain network narrowed to these widths (e.g. 48: a multiple of 16, which '
                        'the CPU runs faster per multiply-add than the equal-MAC widths 42-46)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--train-batch', type=int, default=4)
    parser.add_argument('--train-size', type=int, default=48)
    parser.add_argument('--train-repeats', type=int, default=5)
    parser.add_argument('--formats', nargs='+', default=['nchw', 'channels_last'], choices=['nchw', 'channels_last'],
                        help='memory formats to time (each variant is reported in its fastest)')
    parser.add_argument('--compile', action='store_true',
                        help='time inference through torch.compile (inductor, freezing) for every network alike; '
                        'training steps stay eager. Needs a C++ compiler on the CPU')
    parser.add_argument('--json', help='also write everything as JSON to this path')
    parser.add_argument('--profile', type=int, default=0, metavar='PASSES',
                        help="also profile each variant's fastest inference setting over PASSES calls (torch.profiler)"
                        ' and list its costliest operators')
    parser.add_argument('--profile-top', type=int, default=8, help='operators listed per profile')
    args = parser.parse_args(argv)
    refusal = args.compile and compile_refusal(args.device)
    if refusal:
        parser.error(refusal)

    for name in args.networks:  # before any timing
        for scale in args.scales if NETWORKS[name][3] else [1]:
            try:
                check_plain_widths(name, scale, args.plain_widths)
            except UserError as error:
                parser.error(str(error))
    torch.set_num_threads(args.threads)
    env = dict(machine=f'{platform.machine()} {platform.processor() or platform.platform()}',
               cpu_capability=torch.backends.cpu.get_cpu_capability(),  # the vector ISA PyTorch's kernels use
               python=platform.python_version(), torch=torch.__version__, threads=torch.get_num_threads(),
               device=torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu', compiled=args.compile)
    rows = []
    for name in args.networks:
        for scale in args.scales if NETWORKS[name][3] else [1]:  # a network without a scale argument: x1 only
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
