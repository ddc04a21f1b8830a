"""Build the native extensions: the PyO3 crate (streamcore._native) and the Cython
modules (streamcore._cy_*), into one wheel.

STREAMCORE_NO_EXTENSIONS=1   build nothing native; the package runs pure Python.
STREAMCORE_REQUIRE_EXTENSIONS=1  a failed native build is an error, not a fallback.
"""

import glob
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NO_EXT = os.environ.get("STREAMCORE_NO_EXTENSIONS") == "1"
REQUIRE = os.environ.get("STREAMCORE_REQUIRE_EXTENSIONS") == "1"


class OptionalBuildExt(build_ext):
    """Let a Cython build failure fall back to pure Python unless extensions are required."""

    def run(self):
        try:
            super().run()
        except Exception as exc:
            if REQUIRE:
                raise
            print(f"streamcore: Cython extensions not built ({exc}); using pure Python", file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            if REQUIRE:
                raise
            print(f"streamcore: {ext.name} not built ({exc}); using pure Python", file=sys.stderr)


kwargs = {}
if not NO_EXT:
    from Cython.Build import cythonize
    from setuptools_rust import Binding, RustExtension

    pyx = sorted(glob.glob("cython/_cy_*.pyx"))
    extensions = [
        Extension(f"streamcore.{os.path.splitext(os.path.basename(p))[0]}", [p], extra_compile_args=["-O3"])
        for p in pyx
    ]
    kwargs["ext_modules"] = cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    )
    kwargs["rust_extensions"] = [
        RustExtension(
            "streamcore._native",
            path="rust/python/Cargo.toml",
            binding=Binding.PyO3,
            optional=not REQUIRE,
            debug=False,
        )
    ]
    kwargs["cmdclass"] = {"build_ext": OptionalBuildExt}

setup(**kwargs)
