"""Make ``import basicsr`` (1.4.2, the only release on PyPI) work on today's torchvision.

``torchvision.transforms.functional_tensor`` was renamed ``_functional_tensor`` (torchvision 0.17); BasicSR imports
the old name in ``basicsr/data/degradations.py``, so ``import basicsr`` fails. ``alias_functional_tensor`` registers
the new module under the old name. ``import msconv_plugin`` calls it before anything of BasicSR is imported; it is
the plugin's only change at import time, and a no-op where torchvision still has the old name.
"""
import importlib
import importlib.metadata
import importlib.util
import sys

MIN_BASICSR = (1, 4, 2)
# Distributions that install the ``basicsr`` package: BasicSR itself and the basicsr-fixed fork.
BASICSR_DISTRIBUTIONS = ('basicsr', 'basicsr-fixed')


def check_basicsr():
    """Raise ``ImportError`` with what to install when no BasicSR >= 1.4.2 is installed.

    setup.py cannot require ``basicsr`` by name without pip installing it over ``basicsr-fixed``; this check
    accepts either distribution.
    """
    install = ('pip install "msconv_plugin[basicsr]" (BasicSR from PyPI), or pip install basicsr-fixed (the fork '
               'Real-ESRGAN recommends)')
    if importlib.util.find_spec('basicsr') is None:
        raise ImportError(f'msconv_plugin needs BasicSR 1.4.2 or later, and no basicsr is installed: {install}.')
    for distribution in BASICSR_DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
        numbers = tuple(int(part) for part in version.split('.')[:3] if part.isdigit())
        if numbers < MIN_BASICSR:
            raise ImportError(f'msconv_plugin needs BasicSR 1.4.2 or later; {distribution} {version} is installed: '
                              f'{install}.')


def alias_functional_tensor():
    """Register ``torchvision.transforms._functional_tensor`` as ``torchvision.transforms.functional_tensor``."""
    old_name = 'torchvision.transforms.functional_tensor'
    try:
        importlib.import_module(old_name)
    except ImportError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')
