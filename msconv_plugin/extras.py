"""Optional dependencies: the networks need only torch, torchvision and BasicSR; the demo, the studies, the
complexity counter, ONNX export and LMDB tools need an extra (``pip install "msconv_plugin[<extra>]"``)."""
import importlib


def require(module, extra):
    """``importlib.import_module(module)``, or an ``ImportError`` naming the extra that installs it.

    Args:
        module (str): Module to import, e.g. 'mmengine.analysis'.
        extra (str): The extra of setup.py that provides it, e.g. 'study'.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f'{module} is not installed ({error}); it comes with msconv_plugin\'s {extra!r} extra: '
                          f'pip install "msconv_plugin[{extra}]"') from error
