# flake8: noqa
import os.path as osp
import sys

import msconv_plugin  # registers the plugin's networks first
import basicsr.train
from basicsr.train import train_pipeline

from msconv_plugin.basicsr_fixes.distributed import end_process_group
from msconv_plugin.cli import run
from msconv_plugin.validation import checked_run


def main():
    msconv_plugin.patch_basicsr()
    with checked_run(basicsr.train):
        train_pipeline(osp.abspath('.'))
    end_process_group()


if __name__ == '__main__':
    sys.exit(run(main))
