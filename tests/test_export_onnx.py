"""scripts/export_onnx.py: tiny networks exported once, run by ONNX Runtime at other (odd) sizes and batches."""
import json
from os import path as osp

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from tests.scripts import load_script as load_script_named

onnx = pytest.importorskip('onnx', reason='ONNX export tests need onnx (pip install .[onnx])')
pytest.importorskip('onnxruntime', reason='ONNX export tests need onnxruntime (pip install .[onnx])')

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
RGB = dict(num_in_ch=3, num_out_ch=3)
NETWORKS = {
    'MS3EDSR-n2': ('MS3EDSR', dict(RGB, num_feat=8, num_block=1, upscale=2, n_scales=2)),
    'MS3EDSR-n3-whole': ('MS3EDSR', dict(RGB, num_feat=12, num_block=1, upscale=3, n_scales=3, scope='whole')),
    'MS3CARN-n2': ('MS3CARN', dict(num_feat=8, upscale=2, n_scales=2)),
    'MS3SRResNet-n2': ('MS3SRResNet', dict(RGB, num_feat=8, num_block=1, upscale=4, n_scales=2)),
    'MS3RRDBNet-n2': ('MS3RRDBNet', dict(RGB, scale=4, num_feat=8, num_block=1, num_grow_ch=4, n_scales=2)),
    'EDSR': ('EDSR', dict(RGB, num_feat=8, num_block=1, upscale=2)),
}
TOLERANCE = 1e-4


def load_script():
    return load_script_named('export_onnx')


export_onnx = load_script()


def build(name):
    net_type, kwargs = NETWORKS[name]
    torch.manual_seed(0)
    return ARCH_REGISTRY.get(net_type)(**kwargs).eval()


def dims(value_info):
    """Each dimension of a graph input or output: its name if symbolic, else its value."""
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def input_dims(path):
    model = onnx.load(path)
    assert [i.name for i in model.graph.input] == ['input'] and [o.name for o in model.graph.output] == ['output']
    return dims(model.graph.input[0])


@pytest.mark.parametrize('name', NETWORKS)
def test_export_runs_at_other_sizes(name, tmp_path):
    net = build(name)
    path = export_onnx.export(net, str(tmp_path / f'{name}.onnx'), example_size=(32, 32))
    assert input_dims(path) == ['batch', 3, 'height', 'width']
    assert dims(onnx.load(path).graph.output[0]) == ['batch', 3, 'out_height', 'out_width']
    for size in ((23, 17), (31, 40)):  # odd, and not multiples of 2**(n_scales - 1)
        assert export_onnx.check(net, path, size) < TOLERANCE, size


def test_export_at_odd_example_size(tmp_path):
    """The example size only drives the trace: a graph traced at an odd size (padding at the split) also runs at
    sizes that need no padding."""
    net = build('MS3EDSR-n3-whole')
    path = export_onnx.export(net, str(tmp_path / 'odd.onnx'), example_size=(23, 17))
    assert export_onnx.check(net, path, (32, 24), batch=1) < TOLERANCE


def test_rrdbnet_x2_check_size_rounded_up(tmp_path):
    """RRDBNet x2 pixel-unshuffles its input by 2: ``check`` runs it at the next even size."""
    net = ARCH_REGISTRY.get('MS3RRDBNet')(**RGB, scale=2, num_feat=8, num_block=1, num_grow_ch=4, n_scales=2).eval()
    assert export_onnx.check_input_size(net, (23, 17)) == (24, 18)
    path = export_onnx.export(net, str(tmp_path / 'rrdb_x2.onnx'))
    assert export_onnx.check(net, path, (23, 17)) < TOLERANCE


@pytest.mark.slow
def test_dynamo_exporter(tmp_path):
    pytest.importorskip('onnxscript', reason='the dynamo-based exporter needs onnxscript (pip install .[onnx])')
    net = build('MS3EDSR-n2')
    path = export_onnx.export(net, str(tmp_path / 'dynamo.onnx'), exporter='dynamo')
    assert input_dims(path) == ['batch', 3, 'height', 'width']
    assert dims(onnx.load(path).graph.output[0])[:2] == ['batch', 3]  # the output's batch is dynamic too
    assert not osp.exists(path + '.data')  # the weights are inside the one file
    assert export_onnx.check(net, path, (23, 17)) < TOLERANCE


def test_cli_network_json_with_check(tmp_path, capsys):
    out = tmp_path / 'sub' / 'tiny.onnx'
    network = dict(type='MS3EDSR', **NETWORKS['MS3EDSR-n2'][1])
    assert export_onnx.main(['--network', json.dumps(network), '-o', str(out), '--check']) == 0
    assert out.is_file() and input_dims(str(out)) == ['batch', 3, 'height', 'width']
    assert 'max abs diff' in capsys.readouterr().out


def test_cli_opt_with_weights(tmp_path):
    """--opt alone builds network_g of an option file; --weights loads params_ema strictly."""
    net = build('MS3EDSR-n2')
    torch.save({'params_ema': net.state_dict(), 'params': {}}, tmp_path / 'net_g.pth')
    opt = tmp_path / 'options.yml'
    opt.write_text(json.dumps({'scale': 2, 'network_g': dict(type='MS3EDSR', **NETWORKS['MS3EDSR-n2'][1])}))
    out = tmp_path / 'edsr.onnx'
    argv = ['--opt', str(opt), '--weights', str(tmp_path / 'net_g.pth'), '-o', str(out), '--size', '16', '16']
    assert export_onnx.main(argv) == 0
    # the exported weights are the checkpoint's: ONNX Runtime matches the network they came from
    assert export_onnx.check(net, str(out), (9, 11), batch=1) < TOLERANCE


def test_cli_fails_above_tolerance(tmp_path):
    network = json.dumps(dict(type='EDSR', **NETWORKS['EDSR'][1]))
    assert export_onnx.main(['--network', network, '-o', str(tmp_path / 'e.onnx'), '--check', '--tolerance', '-1']) == 1


def test_cli_needs_a_network(tmp_path):
    with pytest.raises(SystemExit):
        export_onnx.main(['-o', str(tmp_path / 'x.onnx')])
