"""msconv_plugin.inference: model resolution (zoo name or checkpoint + options), image formats, tiling."""
import hashlib
import json
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network

from msconv_plugin.inference import main, tile_alignment, tile_forward
from msconv_plugin.zoo import build_model, zoo_entry

SCALE = 2
TINY_NETS = {
    'TinyMS3EDSR_x2': dict(type='MS3EDSR', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=1, upscale=SCALE,
                           n_scales=2),
    'TinyEDSR_x2': dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=1, upscale=SCALE),
}


def make_net(network_g, seed=0):
    torch.manual_seed(seed)
    return build_network(dict(network_g)).eval()


def receptive_radius(net, scale, size=64):
    """Farthest input pixel (Chebyshev distance) that an output pixel depends on, over four pixel phases (MS³
    pooling groups pixels in 2×2 or 4×4 blocks, so positions in a block can reach differently far)."""
    radius = 0
    for c in range(size // 2, size // 2 + 4):
        x = torch.rand(1, 3, size, size, requires_grad=True)
        net(x)[0, :, c * scale:(c + 1) * scale, c * scale:(c + 1) * scale].sum().backward()
        support = x.grad.abs().sum((0, 1)).nonzero()
        radius = max(radius, (support - c).abs().max().item())
    return radius


@pytest.fixture
def zoo(tmp_path):
    """A model zoo JSON with the tiny networks (seeded weights under 'params'); returns its path."""
    models = []
    for seed, (name, network_g) in enumerate(TINY_NETS.items()):
        weights = tmp_path / 'zoo' / 'weights' / f'{name}.pth'
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save({'params': make_net(network_g, seed).state_dict()}, weights)
        models.append(dict(name=name, file=f'weights/{name}.pth', task='sr', scale=SCALE, network_g=network_g,
                           sha256=hashlib.sha256(weights.read_bytes()).hexdigest(), psnr={'Set5': 0}))
    path = tmp_path / 'zoo' / 'model_zoo.json'
    path.write_text(json.dumps(dict(models=models)))
    return str(path)


def random_image(shape, dtype=np.uint8, seed=0):
    """Smooth random image (noise blurred), so that the networks see image-like input."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (5, 5), 1.5)
    return (img * np.iinfo(dtype).max).round().astype(dtype)


def run(*args):
    return main([str(arg) for arg in args])


def test_folder_by_zoo_name_whole_and_tiled(tmp_path, zoo, capsys):
    images = tmp_path / 'in'
    images.mkdir()
    cv2.imwrite(str(images / 'a_rgb.png'), random_image((29, 37, 3)))
    cv2.imwrite(str(images / 'b_gray.png'), random_image((23, 41), seed=1))
    (images / 'notes.txt').write_text('not an image')

    name = 'TinyMS3EDSR_x2'
    tile, tile_pad = 16, 12
    whole = run('-i', images, '-o', tmp_path / 'whole', '--model', name, '--zoo', zoo, '--device', 'cpu')
    tiled = run('-i', images, '-o', tmp_path / 'tiled', '--model', name, '--zoo', zoo, '--tile', tile,
                '--tile-pad', tile_pad)
    assert [osp.basename(p) for p in whole] == [f'a_rgb_{name}.png', f'b_gray_{name}.png']
    assert 'Time per image (network and tiling): median' in capsys.readouterr().out

    for in_name, out_whole, out_tiled in zip(('a_rgb.png', 'b_gray.png'), whole, tiled):
        src = cv2.imread(str(images / in_name), cv2.IMREAD_UNCHANGED)
        a = cv2.imread(out_whole, cv2.IMREAD_UNCHANGED)
        b = cv2.imread(out_tiled, cv2.IMREAD_UNCHANGED)
        assert a.shape == b.shape == (src.shape[0] * SCALE, src.shape[1] * SCALE) + src.shape[2:]
        assert a.dtype == np.uint8
        # The context covers the receptive field, and tiles start on the network's pooling grid (2×2 average
        # pooling of MS³'s coarse branch), so every output pixel, at the border too, is computed from the same
        # input pixels as untiled: only floating-point rounding (different convolution sizes) may differ, which
        # can move a value across a rounding boundary of the 8-bit quantisation: at most 1 grey level.
        assert receptive_radius(make_net(TINY_NETS[name]), SCALE) <= tile_pad
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1
        assert (diff == 0).mean() > 0.99


def test_tile_forward_equals_untiled_any_size():
    for network_g, tile, tile_pad, align in [
        (TINY_NETS['TinyEDSR_x2'], 8, 6, 1),  # receptive-field radius 6
        (TINY_NETS['TinyMS3EDSR_x2'], 8, 10, 2),  # scope 'trunk' (the default): radius 10; 2×2 pooling: even starts
        (dict(TINY_NETS['TinyMS3EDSR_x2'], scope='whole'), 8, 12, 2),  # radius 11
        (dict(TINY_NETS['TinyMS3EDSR_x2'], scope='whole', n_scales=3, num_feat=12), 16, 22, 4),  # radius 22
    ]:
        net = make_net(network_g)
        assert tile_alignment(net) == align
        assert receptive_radius(net, SCALE) <= tile_pad
        for h, w in [(23, 37), (5, 3), (tile + 1, 2 * tile - 1), (61, 54)]:
            x = torch.rand(1, 3, h, w)
            with torch.inference_mode():
                whole = tile_forward(net, x, SCALE, 0, tile_pad)
                tiled = tile_forward(net, x, SCALE, tile, tile_pad)
            assert whole.shape == tiled.shape == (1, 3, h * SCALE, w * SCALE)
            # Identical up to float rounding: the convolutions run on other sizes, which may sum in another order.
            torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5, msg=f'{network_g["type"]} {h}x{w}')


def test_tile_forward_pixel_unshuffle_networks_any_size():
    """RRDBNets at scales 1 and 2 pixel-unshuffle their input: any size still works, whole and tiled, and tiles
    start on the unshuffle grid (× the MS³ pooling factor). Their receptive field (radius > 60 even with one
    block) is too wide for an equality check on a small image."""
    rrdb = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4)
    for network_g, align in [(dict(type='RRDBNet', scale=1, **rrdb), 4), (dict(type='MS3RRDBNet', scale=2, **rrdb), 4),
                             (dict(type='RRDBNet', scale=2, **rrdb), 2), (dict(type='MS3RRDBNet', scale=4, **rrdb), 2)]:
        net = make_net(network_g)
        assert tile_alignment(net) == align
        scale = network_g['scale']
        for h, w in [(13, 11), (6, 5)]:
            x = torch.rand(1, 3, h, w)
            with torch.inference_mode():
                for tile in (0, 4, 7):
                    assert tile_forward(net, x, scale, tile, 3).shape == (1, 3, h * scale, w * scale)


def test_tile_forward_without_enough_context_differs():
    """The check above is not vacuous: without context the tiles' seams show."""
    net = make_net(TINY_NETS['TinyMS3EDSR_x2'])
    x = torch.rand(1, 3, 31, 33)
    with torch.inference_mode():
        assert (tile_forward(net, x, SCALE, 8, 0) - tile_forward(net, x, SCALE, 0, 0)).abs().max() > 1e-3


def test_rgba_keeps_alpha_and_16_bit_stays_16_bit(tmp_path, zoo):
    bgr = random_image((17, 21, 3))
    alpha = np.tile(np.linspace(0, 255, 21).round().astype(np.uint8), (17, 1))
    cv2.imwrite(str(tmp_path / 'rgba.png'), np.dstack([bgr, alpha]))
    cv2.imwrite(str(tmp_path / 'rgb.png'), bgr)
    cv2.imwrite(str(tmp_path / 'rgb16.png'), bgr.astype(np.uint16) * 257)  # the same values on 16 bits
    common = ['-o', tmp_path / 'out', '--model', 'TinyEDSR_x2', '--zoo', zoo, '--suffix', 'x2']
    out_rgba, = run('-i', tmp_path / 'rgba.png', *common)
    out_rgb, = run('-i', tmp_path / 'rgb.png', *common)
    out_16, = run('-i', tmp_path / 'rgb16.png', *common)
    assert out_rgba.endswith('rgba_x2.png')

    rgba = cv2.imread(out_rgba, cv2.IMREAD_UNCHANGED)
    rgb = cv2.imread(out_rgb, cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (34, 42, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 3], cv2.resize(alpha, (42, 34), interpolation=cv2.INTER_LINEAR))
    np.testing.assert_array_equal(rgba[..., :3], rgb)  # the colour goes through the network as without alpha

    out16 = cv2.imread(out_16, cv2.IMREAD_UNCHANGED)
    assert out16.shape == (34, 42, 3) and out16.dtype == np.uint16
    assert len(np.unique(out16 % 257)) > 1  # not an 8-bit result scaled up
    assert np.abs(out16 / 257 - rgb).max() <= 0.5 + 1e-6  # same network output, quantised on 16 vs 8 bits


def test_checkpoint_with_options(tmp_path, zoo):
    network_g = TINY_NETS['TinyEDSR_x2']
    ema = {f'module.{key}': value for key, value in make_net(network_g, seed=1).state_dict().items()}  # zoo's seed
    checkpoint = tmp_path / 'experiments' / 'tiny' / 'models' / 'net_g_latest.pth'
    checkpoint.parent.mkdir(parents=True)
    torch.save({'params': make_net(network_g, seed=5).state_dict(), 'params_ema': ema}, checkpoint)
    opt = tmp_path / 'train_tiny.yml'
    opt.write_text(yaml.safe_dump(dict(name='tiny', model_type='SRModel', scale=SCALE, network_g=network_g)))
    cv2.imwrite(str(tmp_path / 'img.png'), random_image((19, 27, 3)))

    net, scale, info = build_model(str(checkpoint), opt=str(opt))
    assert scale == SCALE and info['param_key'] == 'params_ema' and info['source'] == 'checkpoint'
    out_ckpt, = run('-i', tmp_path / 'img.png', '-o', tmp_path / 'out', '--model', checkpoint, '--opt', opt)
    assert out_ckpt.endswith('img_net_g_latest.png')
    out_zoo, = run('-i', tmp_path / 'img.png', '-o', tmp_path / 'out', '--model', 'TinyEDSR_x2', '--zoo', zoo)
    # params_ema, not params, was loaded, 'module.' stripped: the very weights of the zoo entry.
    np.testing.assert_array_equal(cv2.imread(out_ckpt), cv2.imread(out_zoo))

    # --param-key params picks the raw weights instead (here: another network's output).
    raw, = run('-i', tmp_path / 'img.png', '-o', tmp_path / 'raw', '--model', checkpoint, '--opt', opt,
               '--param-key', 'params')
    assert build_model(str(checkpoint), opt=str(opt), param_key='params')[2]['param_key'] == 'params'
    assert not np.array_equal(cv2.imread(raw), cv2.imread(out_zoo))
    with pytest.raises(KeyError, match='no .params_ema.'):
        torch.save({'params': make_net(network_g, seed=5).state_dict()}, tmp_path / 'raw_only.pth')
        build_model(str(tmp_path / 'raw_only.pth'), opt=str(opt), param_key='params_ema')

    with pytest.raises(ValueError, match=r'--opt'):
        run('-i', tmp_path / 'img.png', '-o', tmp_path / 'out', '--model', checkpoint)
    wrong = tmp_path / 'wrong.yml'
    wrong.write_text(yaml.safe_dump(dict(scale=SCALE, network_g=TINY_NETS['TinyMS3EDSR_x2'])))
    with pytest.raises(RuntimeError, match='do not fit'):
        build_model(str(checkpoint), opt=str(wrong))


def test_clear_errors(tmp_path, zoo, monkeypatch):
    cv2.imwrite(str(tmp_path / 'img.png'), random_image((8, 8, 3)))
    common = ['-i', tmp_path / 'img.png', '-o', tmp_path / 'out', '--zoo', zoo]
    with pytest.raises(ValueError, match=r"Unknown model 'NoSuchModel'.*TinyEDSR_x2, TinyMS3EDSR_x2"):
        run(*common, '--model', 'NoSuchModel')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        run(*common, '--model', tmp_path / 'missing.pth', '--opt', tmp_path / 'x.yml')

    # A zoo entry whose weight file is missing; the zoo found through $MSCONV_ZOO.
    data = json.loads(open(zoo).read())
    data['models'][0]['file'] = 'weights/gone.pth'
    moved = tmp_path / 'zoo' / 'other_zoo.json'
    moved.write_text(json.dumps(data))
    monkeypatch.setenv('MSCONV_ZOO', str(moved))
    assert zoo_entry('TinyEDSR_x2')['weights_path'] == str(tmp_path / 'zoo' / 'weights' / 'TinyEDSR_x2.pth')
    with pytest.raises(FileNotFoundError, match=r'gone\.pth'):
        build_model('TinyMS3EDSR_x2')

    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not a png')
    with pytest.raises(ValueError, match=r'Cannot read image .*bad\.png'):
        run(*common[2:], '-i', bad, '--model', 'TinyEDSR_x2')


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('c++') is None and shutil.which('g++') is None,
                    reason='torch.compile (inductor) needs a C++ compiler on the CPU')
def test_compile_gives_the_eager_images_tiled(tmp_path, zoo, capsys):
    """--compile (torch.compile, inductor with freezing; what benchmark_speed.py --compile times): the same images
    as eager, tiled (tiles of several sizes: the second size recompiles with dynamic sizes; a wrapped network still
    tiles on its pooling grid)."""
    images = tmp_path / 'in'
    images.mkdir()
    cv2.imwrite(str(images / 'a.png'), random_image((21, 26, 3)))
    cv2.imwrite(str(images / 'b.png'), random_image((16, 19, 3), seed=1))
    name = 'TinyMS3EDSR_x2'
    args = ('-i', images, '--model', name, '--zoo', zoo, '--device', 'cpu', '--tile', 12, '--tile-pad', 6)
    eager = run('-o', tmp_path / 'eager', *args)
    compiled = run('-o', tmp_path / 'compiled', *args, '--compile')
    for a, b in zip(eager, compiled):
        diff = np.abs(cv2.imread(a).astype(int) - cv2.imread(b).astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # fused float32 work may round differently
    assert 'through torch.compile' in capsys.readouterr().out


def test_compile_without_a_cpp_compiler_is_refused_before_any_work(tmp_path, zoo, monkeypatch):
    import msconv_plugin.inference as inference
    monkeypatch.setattr(inference.shutil, 'which', lambda name: None)
    with pytest.raises(SystemExit) as exc:
        run('-i', tmp_path, '-o', tmp_path / 'out', '--model', 'TinyEDSR_x2', '--zoo', zoo, '--device', 'cpu',
            '--compile')
    assert exc.value.code == 2 and not (tmp_path / 'out').exists()


def test_compile_refusal_asks_for_a_cpp_compiler_only_on_the_cpu(monkeypatch):
    """Inductor writes C++ for the CPU and Triton for CUDA: without g++, --compile is refused for 'cpu' and for
    'auto' on a machine without CUDA, never for 'cuda'."""
    import msconv_plugin.inference as inference
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert 'C++ compiler' in inference.compile_refusal('cpu') and 'C++ compiler' in inference.compile_refusal('auto')
    assert inference.compile_refusal('cuda') is None
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert inference.compile_refusal('auto') is None
    monkeypatch.setattr(shutil, 'which', lambda name: '/usr/bin/g++' if name == 'g++' else None)
    assert inference.compile_refusal('cpu') is None
