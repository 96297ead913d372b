# flake8: noqa
import os.path as osp

import msconv_plugin  # registers the plugin's networks (and applies the BasicSR fixes) first
from basicsr.train import train_pipeline


def main():
    train_pipeline(osp.abspath('.'))


if __name__ == '__main__':
    main()
