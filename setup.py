"""Build and install xapi-numa.

The native extension (libxenuma via cffi) arrives with the native-layer work;
until then the package is pure Python and runs on the simulated host.
"""
from setuptools import find_packages, setup

setup(
    name="xapi-numa",
    version="0.1.0",
    description="NUMA placement and balancing for Xen hosts run by the XAPI toolstack",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="LGPL-2.1-only",
    python_requires=">=3.9",
    packages=find_packages(include=["xapi_numa", "xapi_numa.*"]),
    install_requires=["attrs>=22.2"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80"],
    },
    entry_points={
        "console_scripts": [
            "xapi-numa = xapi_numa.cli:main",
            "xapi-numad = xapi_numa.daemon:main",
        ],
    },
)
