# flake8: noqa
import os.path as osp

import msconv_plugin  # registers the plugin's networks first
from basicsr.train import train_pipeline


def main():
    msconv_plugin.patch_basicsr()
    train_pipeline(osp.abspath('.'))


if __name__ == '__main__':
    main()
