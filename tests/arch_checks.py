"""Checks every converted network must pass (imported by the per-network test files)."""
import torch

from msconv_plugin.archs.ms3conv import MS3Conv
from msconv_plugin.complexity import measure


def assert_shared_weights_and_gradients(net, x, n_scales):
    """On the reference path, each S2 layer's single same-scale module runs once per branch; on both paths, one
    backward pass gives every parameter of the network a non-zero gradient, and the same gradients."""
    calls = []
    s2_layers = [m for m in net.modules() if isinstance(m, MS3Conv)]
    assert s2_layers, 'no S2 layer in the network'
    handles = [layer.same_scale.register_forward_hook(lambda mod, inp, out: calls.append(mod)) for layer in s2_layers]
    grads = []
    for merged in (False, True):
        for layer in s2_layers:
            layer.merged = merged
        net.zero_grad()
        net(x).abs().mean().backward()
        grads.append({name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None})
        for handle in handles:
            handle.remove()
    for layer in s2_layers:
        assert sum(c is layer.same_scale for c in calls) == n_scales
        assert [n for n, _ in layer.named_parameters() if n.startswith('same_scale')][0] == 'same_scale.weight'
    for name, p in net.named_parameters():
        assert name in grads[1] and grads[1][name].abs().sum() > 0, name
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-3, atol=1e-5)


def assert_equivalent(plain, converted, x, atol=1e-6):
    plain.eval()
    converted.eval()
    with torch.no_grad():
        torch.testing.assert_close(converted(x), plain(x), rtol=0, atol=atol)
    assert sum(p.numel() for p in converted.parameters()) == sum(p.numel() for p in plain.parameters())


def complexity_counter():
    """The project's parameter / multiply-add counter, ``measure(net_type, kwargs, size)``."""
    return measure
