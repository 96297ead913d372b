"""``python -m msconv_plugin.train`` with test hooks, switched on by environment variables (for subprocess tests).

- ``MSCONV_TEST_DUMP_DIR``: after training, every rank (not only rank 0) saves the weights of its ``net_g`` to
  ``<dir>/rank<rank>.pth``, so that a test can compare the ranks of a distributed run.
- ``MSCONV_TEST_HANG_SAVE``: the ``torch.save`` into a file whose name contains this text writes the first half of
  the checkpoint, creates ``<file>.hanging`` and waits, for a test to kill the process in the middle of a save.

Run it as ``python tests/train_with_hooks.py -opt ...`` or under ``torch.distributed.run``.
"""
import io
import os
import os.path as osp
import time

import torch

import msconv_plugin  # before anything of BasicSR
import basicsr.train
from msconv_plugin.train import main


def _hang_in_save(fragment):
    save = torch.save

    def save_half_then_wait(obj, f, *args, **kwargs):
        name = str(getattr(f, 'name', f))
        if fragment not in osp.basename(name):
            return save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
        f.flush()
        open(f'{name}.hanging', 'w').close()
        time.sleep(600)

    torch.save = save_half_then_wait


def _keep_models(models):
    build_model = basicsr.train.build_model

    def build_and_keep(opt):
        model = build_model(opt)
        models.append(model)
        return model

    basicsr.train.build_model = build_and_keep


if __name__ == '__main__':
    if os.environ.get('MSCONV_TEST_HANG_SAVE'):
        _hang_in_save(os.environ['MSCONV_TEST_HANG_SAVE'])
    msconv_plugin.patch_basicsr()  # first, so that the hooks wrap the plugin's functions (main's call is a no-op)
    models = []
    _keep_models(models)
    main()
    assert not torch.distributed.is_initialized(), 'the entry point left its process group running'
    if os.environ.get('MSCONV_TEST_DUMP_DIR'):
        model, = models
        rank = model.opt['rank']
        torch.save(model.get_bare_model(model.net_g).state_dict(),
                   osp.join(os.environ['MSCONV_TEST_DUMP_DIR'], f'rank{rank}.pth'))
