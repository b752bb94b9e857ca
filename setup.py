"""Packaging of esc_basicsr (one setup.py, as BasicSR users expect)."""
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PTH = 'esc_basicsr_autoload.pth'


def read_version() -> str:
    scope: dict = {}
    with open(os.path.join(HERE, 'esc_basicsr', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


class BuildPyWithPth(build_py):
    """Ship the start-up hook's .pth file at the root of site-packages."""

    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH), preserve_mode=0)
        if getattr(self, 'editable_mode', False):
            # editable wheels only carry what is written to the unpacked wheel (install_lib)
            target = self.get_finalized_command('install').install_lib
            self.copy_file(os.path.join(HERE, PTH), os.path.join(target, PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]


with open(os.path.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='esc_basicsr',
    version=read_version(),
    description='ESC (ICCV 2025) and ELAN (ECCV 2022) super-resolution networks as a BasicSR plugin',
    long_description=long_description,
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['esc_basicsr', 'esc_basicsr.*']) + ['esc_basicsr.options'],  # options: data only
    py_modules=['esc_basicsr_autoload'],
    package_data={'esc_basicsr': ['py.typed'], 'esc_basicsr.options': ['*.yml']},
    include_package_data=True,
    install_requires=['basicsr>=1.4.2', 'torch>=2.1', 'lmdb', 'opencv-python', 'numpy', 'pyyaml',
                      'tqdm', 'scikit-image', 'pillow'],
    extras_require={
        'test': ['pytest', 'scikit-image', 'spandrel>=0.4'],
        'spandrel': ['spandrel>=0.4'],
        'onnx': ['onnx', 'onnxruntime', 'onnxscript'],
        'plot': ['matplotlib'],
        'dev': ['pytest', 'ruff', 'onnx', 'onnxruntime', 'onnxscript', 'matplotlib', 'spandrel>=0.4'],
    },
    entry_points={
        'console_scripts': [
            'esc-train=esc_basicsr.train:main',
            'esc-test=esc_basicsr.test:main',
            'esc-prepare=esc_basicsr.prepare:main',
            'esc-infer=esc_basicsr.infer:main',
            'esc-export=esc_basicsr.export:main',
            'esc-benchmark=esc_basicsr.benchmark:main',
            'esc-demo=esc_basicsr.demo:main',
        ],
    },
    cmdclass={'build_py': BuildPyWithPth},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Image Processing',
    ],
)
