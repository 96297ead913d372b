import json
import os.path as osp
import shutil
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.slow
def test_benchmark_speed_writes_documented_json(tmp_path):
    """Structure only: the suite checks that the benchmark runs and reports what docs/benchmarks.md documents."""
    out = tmp_path / 'bench.json'
    cmd = [
        sys.executable, osp.join(REPO, 'scripts', 'benchmark_speed.py'), '--networks', 'CARN-M', '--scales', '2',
        '--sizes', '12', '--n-scales', '2', '--warmup', '1', '--repeats', '2', '--train-repeats', '1',
        '--train-batch', '1', '--train-size', '8', '--profile', '2', '--profile-top', '3', '--json', str(out)
    ]
    markdown = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.read_text())
    assert {'machine', 'torch', 'threads', 'device'} <= result['env'].keys()
    settings = {(r['variant'], r['precision'], r['memory_format']) for r in result['rows']}
    assert {r['equal_macs_plain'] for r in result['rows'] if r['variant'] == 'n=2'} == {'plain f44'}
    variants = ('plain', 'n=2', next(r['equal_macs_plain'] for r in result['rows'] if r['variant'] == 'n=2'))
    assert settings == {(v, 'fp32', f) for v in variants for f in ('nchw', 'channels_last')}
    for row in result['rows']:
        for key in ('latency_ms', 'throughput', 'train_step_ms', 'peak_memory_mb', 'train_peak_memory_mb'):
            assert row[key] > 0, key
        assert abs(row['throughput'] - 1e3 / row['latency_ms']) < 1e-6 * row['throughput']
    fastest = {s['variant']: s for s in result['fastest']}
    assert set(fastest) == set(variants) and fastest['plain']['speedup'] == 1.0
    narrow = fastest[variants[2]]
    assert fastest['n=2']['speedup_vs_equal_macs'] == narrow['latency_ms'] / fastest['n=2']['latency_ms']
    assert fastest['n=2']['train_speedup_vs_equal_macs'] == narrow['train_step_ms'] / fastest['n=2']['train_step_ms']
    assert fastest['plain']['speedup_vs_equal_macs'] is None
    for s in fastest.values():
        best = min(r['latency_ms'] for r in result['rows'] if r['variant'] == s['variant'])
        assert s['latency_ms'] == best
    assert '| CARN-M | 2 | 12 | n=2 |' in markdown and f'× ({variants[2]}) |' in markdown
    # --profile: the fastest setting of each variant, its costliest operators per call
    for variant, s in fastest.items():
        row, = [r for r in result['rows'] if r['variant'] == variant and 'profile' in r]
        assert row['latency_ms'] == s['latency_ms']
        prof = row['profile']
        assert prof['passes'] == 2 and len(prof['ops']) == 3 and prof['total_self_ms'] > 0
        assert [op['self_ms'] for op in prof['ops']] == sorted((op['self_ms'] for op in prof['ops']), reverse=True)
        assert all(op['calls'] > 0 and 0 < op['share'] <= 1 for op in prof['ops'])
    assert 'Inference profile' in markdown and 'aten::' in markdown


def test_upsample_option_reaches_every_conversion_and_names_it():
    """--upsample: one conversion per scope and up-sampling, each built with it (its MS3 layers resample with it;
    'learned' adds its filters' multiply-adds, so its equal-MAC plain network is wider) and named after it; the
    plain networks are untouched."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from msconv_plugin.archs.ms3conv import MS3Conv
    from msconv_plugin.benchmark import build_variants
    default, default_equal = build_variants('EDSR-M', 1, [2], 'adjacent', ['whole'])
    variants, equal = build_variants('EDSR-M', 1, [2], 'adjacent', ['trunk', 'whole'],
                                     upsamples=['nearest', 'bilinear', 'learned'])
    assert list(default) == ['plain', 'n=2 whole', default_equal['n=2 whole']]
    converted = [f'n=2 {scope} {up}' for scope in ('trunk', 'whole') for up in ('nearest', 'bilinear', 'learned')]
    assert list(variants)[:7] == ['plain'] + converted and set(equal) == set(converted)
    assert set(variants) == {'plain', *converted, *equal.values()}
    assert variants['plain'] == default['plain'] and 'upsample' not in variants['plain'][1]
    for name in converted:
        net_type, kwargs = variants[name]
        scope, up = name.split()[1:]
        assert kwargs['scope'] == scope and kwargs['upsample'] == up
        layers = [m for m in ARCH_REGISTRY.get(net_type)(**kwargs).modules() if isinstance(m, MS3Conv)]
        assert layers and {m.upsample for m in layers} == {up}
    assert variants['n=2 whole nearest'][1] == dict(default['n=2 whole'][1], upsample='nearest')
    assert equal['n=2 whole nearest'] == equal['n=2 whole bilinear'] == default_equal['n=2 whole'] == 'plain f42'
    assert equal['n=2 whole learned'] == 'plain f43'  # the learned filters' multiply-adds


def test_plain_widths_add_narrowed_plain_networks():
    """--plain-widths: the plain network at each width, named like the equal-MAC ones (one entry where they meet),
    built at that width; the full width adds nothing."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from msconv_plugin.benchmark import build_variants
    variants, equal = build_variants('EDSR-M', 1, [2], 'adjacent', ['whole'], plain_widths=[48, 42, 64])
    assert equal == {'n=2 whole': 'plain f42'}
    assert list(variants) == ['plain', 'n=2 whole', 'plain f42', 'plain f48']
    for width in (42, 48):
        net_type, kwargs = variants[f'plain f{width}']
        assert net_type == 'EDSR' and kwargs == dict(variants['plain'][1], num_feat=width)
        assert ARCH_REGISTRY.get(net_type)(**kwargs).conv_first.out_channels == width
    rrdb, _ = build_variants('RRDBNet', 2, [2], 'adjacent', [], equal_macs=False, plain_widths=[32])
    assert rrdb['plain f32'][1]['num_feat'] == 32 and rrdb['plain f32'][1]['num_grow_ch'] == 16


@pytest.mark.parametrize('width', ['0', '65', '46'])
def test_a_plain_width_the_network_cannot_take_is_refused_before_any_work(width, capsys):
    """Widths above the full network's, below 1, or (CARN-M, group 4) not a multiple of its group."""
    sys.path.insert(0, osp.join(REPO, 'scripts'))
    try:
        import benchmark_speed
    finally:
        sys.path.pop(0)
    with pytest.raises(SystemExit) as exc:
        benchmark_speed.main(['--networks', 'EDSR-M', 'CARN-M', '--plain-widths', width])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f'--plain-widths {width}: ' in err and 'in steps of' in err
    assert 'measured' not in err


def _row(variant, latency, peak, equal=None, compiled=True):
    return dict(network='EDSR-M', variant=variant, equal_macs_plain=equal, scale=2, size=16, device='cpu',
                precision='fp32', memory_format='channels_last', compiled=compiled, latency_ms=latency,
                throughput=1e3 / latency, train_step_ms=2 * latency, peak_memory_mb=peak, train_peak_memory_mb=3.)


def test_compiled_rows_report_no_inference_memory_and_say_so():
    """--compile: the CPU profiler cannot see a compiled graph's allocations, so its inference peak is '–', not 0,
    and the table's header says that inference was compiled and training eager."""
    from msconv_plugin.benchmark import fastest, markdown
    rows = [_row('plain', 10., None), _row('n=2', 4., None, 'plain f42'), _row('plain f42', 5., None)]
    summary = {s['variant']: s for s in fastest(rows)}
    assert summary['n=2']['memory_ratio'] is None and summary['n=2']['train_memory_ratio'] == 1.
    assert summary['n=2']['speedup'] == 2.5 and summary['n=2']['speedup_vs_equal_macs'] == 1.25
    env = dict(machine='x', torch='t', threads=1, device='cpu')
    text = markdown(rows, list(summary.values()), dict(env, compiled=True))
    assert 'inference through `torch.compile` (inductor, freezing), training steps eager' in text
    assert '| EDSR-M | 2 | 16 | n=2 | fp32 channels_last | 4.0 | 2.50× | 1.25× (plain f42) | – | – |' in text
    assert '; eager.' in markdown([_row('plain', 10., 2., compiled=False)], fastest([_row('plain', 10., 2.)]), env)


def test_compile_without_a_cpp_compiler_is_refused_before_any_work(monkeypatch, capsys):
    sys.path.insert(0, osp.join(REPO, 'scripts'))
    try:
        import benchmark_speed
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    with pytest.raises(SystemExit) as exc:
        benchmark_speed.main(['--compile', '--device', 'cpu'])
    assert exc.value.code == 2 and '--compile needs a C++ compiler' in capsys.readouterr().err
