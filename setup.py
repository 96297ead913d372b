from setuptools import find_packages, setup

# Optional parts, each named in the error raised when it is missing (msconv_plugin.extras.require).
EXTRAS = {
    # BasicSR from PyPI. Not in install_requires: the basicsr-fixed fork installs the same ``basicsr`` package under
    # another distribution name, and pip would install (and overwrite it with) the original. msconv_plugin checks
    # at import time that one of them is there.
    'basicsr': ['basicsr>=1.4.2'],
    'demo': ['scikit-image', 'mmengine>=0.10'],  # python -m msconv_plugin.demo: photographs, multiply-adds
    'study': ['mmengine>=0.10', 'matplotlib'],  # msconv_plugin.complexity, msconv_plugin.study's plot
    'onnx': ['onnx', 'onnxruntime', 'onnxscript'],  # scripts/export_onnx.py; onnxscript only for --exporter dynamo
    'lmdb': ['lmdb'],  # scripts/prepare_dataset.py --lmdb, LMDB datasets
}
EXTRAS['test'] = sorted({'pytest', 'ruff', *(req for reqs in EXTRAS.values() for req in reqs)})

setup(
    name='msconv_plugin',
    version='0.1.0',
    description='MS³-Conv (multi-scale, cross-scale, share-weights convolution) networks for BasicSR',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['msconv_plugin', 'msconv_plugin.*']),
    package_data={'msconv_plugin': ['model_zoo.json', 'weights/*.pth']},  # the model zoo, usable from any directory
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1',
        'torchvision>=0.16',
    ],
    extras_require=EXTRAS,
    entry_points={
        'console_scripts': [
            'msconv-train=msconv_plugin.train:main',
            'msconv-test=msconv_plugin.test:main',
        ],
    },
)
