# flake8: noqa
from .basicsr_fixes import patch_basicsr, unpatch_basicsr  # makes BasicSR importable; patches nothing by itself
from . import archs, data  # register the plugin's networks and datasets into BasicSR's registries
from .version import __version__
