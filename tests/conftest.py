# The plugin must be imported before BasicSR (it makes BasicSR 1.4.2 importable on today's torchvision).
import msconv_plugin  # noqa: F401
