import json
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.slow
def test_model_complexity_json(tmp_path):
    out = tmp_path / 'complexity.json'
    cmd = [
        sys.executable, osp.join(REPO, 'scripts', 'model_complexity.py'), '--networks', 'MSRResNet', '--scales', '4',
        '--n-scales', '2', '3', '--interactions', 'adjacent', '--size', '16', '--json', str(out)
    ]
    markdown = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.read_text())
    assert result['input_size'] == [3, 16, 16]
    rows = result['rows']
    # plain + n_scales {2, 3} x scopes {trunk, whole}
    assert len(rows) == 1 + 2 * 2
    for row in rows:
        assert {'network', 'type', 'scale', 'config', 'params', 'macs', 'uncounted_ops'} <= row.keys()
        assert row['s2_params'] == row['s2_params_closed_form']
        if row['config'] != 'plain':
            assert row['s2_params'] > 0 and 0 < row['params_ratio'] < 1 and 0 < row['macs_ratio'] < 1
            assert f"{row['type']} {row['config']}" in markdown

    # the counter's multiply-adds of plain MSRResNet x4 equal the sum over its convolutions of k²·c_in·c_out·H·W
    hw = 16 * 16
    c = 64
    expected = (9 * 3 * c * hw + 32 * 9 * c * c * hw + 9 * c * 4 * c * hw + 9 * c * 4 * c * 4 * hw +
                9 * c * c * 16 * hw + 9 * c * 3 * 16 * hw)
    plain = next(r for r in rows if r['network'] == 'MSRResNet' and r['config'] == 'plain')
    assert plain['macs'] == expected
    assert 'aten::avg_pool2d' in next(r for r in rows if r['config'] == 'n=2 adjacent whole')['uncounted_ops']


def test_demo_and_docs_count_the_same_multiply_adds():
    """One counter: the demo's table gives, for a network of docs/complexity.md (MS3EDSR-M ×2 n=2, 128×128 input),
    the multiply-adds that table gives."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from msconv_plugin import complexity, demo

    _, ms3_type, kwargs, scale_key, _ = complexity.NETWORKS['EDSR-M']
    kwargs = dict(kwargs, **{scale_key: 2}, n_scales=2, interaction='adjacent', scope='trunk')
    assert demo.COMPLEXITY_INPUT == (3, 128, 128)
    params, macs = demo.complexity(ARCH_REGISTRY.get(ms3_type)(**kwargs).eval())
    assert (params, macs) == tuple(complexity.measure(ms3_type, kwargs, 128)[key] for key in ('params', 'macs'))
    with open(osp.join(REPO, 'docs', 'complexity.md')) as f:
        section = f.read().split('### EDSR-M ×2 (128×128 LR input)')[1].split('###')[0]
    assert f'| MS3EDSR n=2 adjacent trunk | {params / 1e6:.3f} M | 78.4% | {macs / 1e9:.2f} G |' in section


@pytest.mark.parametrize('name,n_scales', [('EDSR-M', 2), ('CARN-M', 2), ('RRDBNet', 3)])
def test_the_equal_macs_plain_network_is_the_closest_width(name, n_scales):
    """The benchmark's baseline ``plain f<width>``: of all valid widths, the one whose multiply-adds are closest to the
    conversion's (checked against both neighbours), narrowing every width argument alike."""
    from basicsr.utils.registry import ARCH_REGISTRY

    from msconv_plugin.complexity import count, equal_macs_width, ms3_kwargs, narrowed, plain_kwargs

    def macs(net_type, kwargs):
        return count(ARCH_REGISTRY.get(net_type)(**kwargs).eval(), (3, 16, 16))[0]

    plain_type, kwargs = plain_kwargs(name, 2)
    if name == 'RRDBNet':
        kwargs['num_block'] = 2  # the width search, not the depth, is under test
    _, ms3 = ms3_kwargs(name, 2, n_scales)
    target = macs(ms3_kwargs(name, 2, n_scales)[0], dict(ms3, **({'num_block': 2} if name == 'RRDBNet' else {})))
    width = equal_macs_width(name, kwargs, target, 16)
    step = kwargs.get('group', 1)
    assert width % step == 0 and width < kwargs['num_feat']
    distance = {w: abs(macs(plain_type, narrowed(name, kwargs, w)) - target)
                for w in (width - step, width, width + step)}
    assert distance[width] == min(distance.values())
    if name == 'RRDBNet':
        assert narrowed(name, kwargs, width)['num_grow_ch'] == round(32 * width / 64)
