# flake8: noqa
from . import compat  # must run before anything of BasicSR is imported
from . import archs  # registers the plugin's networks into BasicSR's ARCH_REGISTRY
from .version import __version__
