"""The build step behind `pip install .` (metadata lives in pyproject.toml).

Builds the _deskml extension with the project's CMake build (target deskml_python:
`cmake --preset release` into build/, or DESKML_BUILD_DIR) and adds it to the
package. Needs what scripts/setup installs (a compiler, CMake, Ninja, pybind11-dev
and the engine's libraries); downloads nothing. If build/ was configured for a
Python with another extension ABI, a separate build/python-<abi> folder is used.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def cached_python(build_dir: Path) -> str:
    cache = build_dir / "CMakeCache.txt"
    if not cache.exists():
        return ""
    m = re.search(r"^Python_EXECUTABLE:[A-Z]+=(.*)$", cache.read_text(), re.M)
    return m.group(1) if m else ""


def ext_suffix(python: str) -> str:
    return subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def build_dir_for_this_python() -> Path:
    if "DESKML_BUILD_DIR" in os.environ:
        return Path(os.environ["DESKML_BUILD_DIR"]).resolve()
    default = ROOT / "build"
    configured = cached_python(default)
    mine = sysconfig.get_config_var("EXT_SUFFIX")
    if not configured or ext_suffix(configured) == mine:
        return default
    return ROOT / f"build/python-{mine.strip('.').split('.')[0]}"


class BuildWithCMake(build_py):
    def run(self) -> None:
        super().run()
        build_dir = build_dir_for_this_python()
        if not (build_dir / "build.ninja").exists():
            configure = ["cmake", "--preset", "release"] if build_dir == ROOT / "build" else [
                "cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                "-DDESKML_BUILD_TESTS=OFF"]
            subprocess.check_call(configure + [f"-DPython_EXECUTABLE={sys.executable}"], cwd=ROOT)
        jobs = os.environ.get("DESKML_JOBS", str(os.cpu_count() or 1))
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "deskml_python", "-j", jobs], cwd=ROOT)
        built = build_dir / "python" / "deskml"
        extension = built / ("_deskml" + sysconfig.get_config_var("EXT_SUFFIX"))
        if not extension.exists():
            sys.exit(f"{extension} was not built (is {build_dir} configured for this Python?)")
        target = Path(self.build_lib) / "deskml"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(extension, target / extension.name)


class BinaryDistribution(Distribution):
    """The wheel holds a compiled extension, so it is specific to this platform and Python."""

    def has_ext_modules(self) -> bool:
        return True


# setuptools' own staging stays out of the source tree and out of CMake's way.
STAGING = ROOT / "build" / "setuptools"
STAGING.mkdir(parents=True, exist_ok=True)
setup(cmdclass={"build_py": BuildWithCMake}, distclass=BinaryDistribution,
      options={"build": {"build_base": str(STAGING)}, "egg_info": {"egg_base": str(STAGING)}})
