"""Build and install xapi-numa.

The native extension (libxenuma, our libxc extension, through cffi) is built
when Xen's development headers are installed (Debian: libxen-dev); without
them the package installs without it and runs on the simulated host only.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
XENCTRL_H = os.environ.get("XENCTRL_H", "/usr/include/xenctrl.h")
NATIVE = os.path.exists(XENCTRL_H) and os.environ.get("XAPI_NUMA_NO_NATIVE") != "1"
DOM0_LIB_SH = os.path.join(HERE, "packaging", "dom0-lib.sh")


def zig_version() -> str:
    """The zig the dom0 library is built with: the one pin, packaging/dom0-lib.sh's ZIG_VERSION
    (which the Makefile reads too, and the script refuses any other zig)."""
    with open(DOM0_LIB_SH, encoding="utf-8") as f:
        pins = re.findall(r"^ZIG_VERSION=(\S+)$", f.read(), re.M)
    if len(pins) != 1:
        raise SystemExit("{}: {} ZIG_VERSION= lines, not one".format(DOM0_LIB_SH, len(pins)))
    return pins[0]


setup(
    name="xapi-numa",
    version="0.1.0",
    description="NUMA placement and balancing for Xen hosts run by the XAPI toolstack",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="LGPL-2.1-only",
    python_requires=">=3.6",
    packages=find_packages(include=["xapi_numa", "xapi_numa.*"]),
    install_requires=["attrs>=22.2", "XenAPI"] + (["cffi>=1.15"] if NATIVE else []),
    setup_requires=["cffi>=1.15"] if NATIVE else [],
    cffi_modules=["libxenuma/build_cffi.py:ffibuilder"] if NATIVE else [],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80", "vermin>=1.6", "ziglang==" + zig_version()],
    },
    entry_points={
        "console_scripts": [
            "xapi-numa = xapi_numa.cli.main:main",
            "xapi-numad = xapi_numa.daemon:main",
            "xapi-numa-rrdd = xapi_numa.rrdd_plugin:main",
        ],
    },
)
