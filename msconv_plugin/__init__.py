# flake8: noqa
from . import compat  # must run before anything of BasicSR is imported
from .archs import *
from .version import __version__
