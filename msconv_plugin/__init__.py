# flake8: noqa
from . import compat  # must run before anything of BasicSR is imported
from . import archs, data  # register the plugin's networks and datasets into BasicSR's registries
from .version import __version__
