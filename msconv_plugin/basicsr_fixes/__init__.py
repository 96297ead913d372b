"""BasicSR 1.4.2 fixes, applied by ``patch_basicsr`` and undone by ``unpatch_basicsr``.

``import msconv_plugin`` only makes ``import basicsr`` work on today's torchvision (``importing``). Everything else
changes how BasicSR trains and tests, so it happens only when asked: the plugin's entry points
(``python -m msconv_plugin.train`` / ``msconv_plugin.test``, ``msconv-train`` / ``msconv-test``) call
``patch_basicsr()`` before running BasicSR's pipelines, and so can a script of your own. One theme per module:

- ``checkpoints``: atomic checkpoint files; resuming without a GPU, past unreadable training states;
- ``mismatch``: a checkpoint that does not fit the network, explained;
- ``distributed``: ``--launcher pytorch|slurm`` on CPUs (gloo);
- ``vgg``: the perceptual loss's VGG weights from a local file, never downloaded;
- ``datasets``: unreadable images and empty datasets named;
- ``errors``: metrics on too small images, a loss that is no longer finite, a discriminator that does not fit the
  training crops.

Every replacement goes through ``patching.replace``; ``patching.replaced()`` lists what is replaced now.
"""
from .importing import alias_functional_tensor, check_basicsr

check_basicsr()
alias_functional_tensor()  # before anything of BasicSR is imported, below or by the caller

from . import checkpoints, datasets, distributed, errors, mismatch, patching, vgg  # noqa: E402

THEMES = (checkpoints, mismatch, distributed, vgg, datasets, errors)


def patch_basicsr():
    """Apply every fix to BasicSR (see the module's docstring); calling it again changes nothing.

    Returns:
        list[str]: What is replaced, as ``patching.replaced`` lists it.
    """
    if not patching.replaced():
        for theme in THEMES:
            theme.apply()
    return patching.replaced()


def unpatch_basicsr():
    """Undo ``patch_basicsr``: BasicSR's own functions and methods are back."""
    patching.restore()
