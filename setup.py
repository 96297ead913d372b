from setuptools import find_packages, setup

setup(
    name='msconv_plugin',
    version='0.1.0',
    description='MS³-Conv (multi-scale, cross-scale, share-weights convolution) networks for BasicSR',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['msconv_plugin', 'msconv_plugin.*']),
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1',
        'torchvision>=0.16',
        'basicsr==1.4.2',
        'mmengine>=0.10',
        'lmdb',
        'opencv-python',
        'scikit-image',
        'matplotlib',  # scripts/compare_quality.py's plot
        'tqdm',  # msconv_plugin.inference's progress bar
    ],
    extras_require={
        # scripts/export_onnx.py: onnxscript only for its --exporter dynamo
        'onnx': ['onnx', 'onnxruntime', 'onnxscript'],
        'test': ['pytest', 'ruff', 'onnx', 'onnxruntime', 'onnxscript'],
    },
    entry_points={
        'console_scripts': [
            'msconv-train=msconv_plugin.train:main',
            'msconv-test=msconv_plugin.test:main',
        ],
    },
)
