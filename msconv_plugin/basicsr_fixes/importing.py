"""Make ``import basicsr`` (1.4.2, the only release on PyPI) work on today's torchvision.

``torchvision.transforms.functional_tensor`` was renamed ``_functional_tensor`` (torchvision 0.17); BasicSR imports
the old name in ``basicsr/data/degradations.py``, so ``import basicsr`` fails. ``alias_functional_tensor`` registers
the new module under the old name. ``import msconv_plugin`` calls it before anything of BasicSR is imported; it is
the plugin's only change at import time, and a no-op where torchvision still has the old name.
"""
import importlib
import sys


def alias_functional_tensor():
    """Register ``torchvision.transforms._functional_tensor`` as ``torchvision.transforms.functional_tensor``."""
    old_name = 'torchvision.transforms.functional_tensor'
    try:
        importlib.import_module(old_name)
    except ImportError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')
