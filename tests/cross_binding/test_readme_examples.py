"""README.md's binding examples run as written: each fenced ```c, ```python and ```ts block in the
section "From C, Python and TypeScript" is saved to a file and run from the repository root, the
way the README tells a reader to run it. A README edit that breaks an example fails here.

Environment (CTest sets it): DESKML_BUILD (the build folder), DESKML_JS (js/, built by make js).
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DESKML_BUILD", ROOT / "build"))
JS = Path(os.environ.get("DESKML_JS", ROOT / "js"))
SECTION = "## From C, Python and TypeScript"


def examples() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end >= 0 else len(text)]
    blocks = dict(re.findall(r"^```(c|python|ts)\n(.*?)^```", section, re.S | re.M))
    assert set(blocks) == {"c", "python", "ts"}, f"README examples found: {sorted(blocks)}"
    return blocks


def run(command: list, cwd: Path = ROOT, **kwargs) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=240, **kwargs)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_c(tmp_path):
    source = tmp_path / "classify.c"
    source.write_text(examples()["c"])
    run(["cc", "-std=c99", source, f"-I{ROOT / 'include'}", f"-L{BUILD / 'lib'}", f"-Wl,-rpath,{BUILD / 'lib'}",
         "-ldeskml", "-o", tmp_path / "classify"])
    out = run([tmp_path / "classify"])
    print(out)
    assert re.search(r"logits -?\d+\.\d+ -?\d+\.\d+", out)


def test_python(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(examples()["python"])
    out = run(["/usr/bin/python3", script], env=dict(os.environ, PYTHONPATH=str(BUILD / "python")))
    print(out)
    assert "session [[" in out and "engine [[" in out


def test_typescript():
    if not (JS / "dist").exists():
        pytest.fail(f"{JS / 'dist'} is missing: run `make js`")
    # As the README says: a file inside js/ (so `deskml/node` resolves to the package), compiled
    # with the package's tsc and run from the repository root. A name of its own, removed after.
    source = JS / f".readme-example-{os.getpid()}.ts"
    compiled = source.with_suffix(".js")
    try:
        source.write_text(examples()["ts"])
        run(["npx", "tsc", "--module", "nodenext", "--target", "es2022", "--strict", source.name], cwd=JS)
        out = run(["node", compiled])
    finally:
        source.unlink(missing_ok=True)
        compiled.unlink(missing_ok=True)
    print(out)
    assert re.search(r"logits Float32Array\(2\)", out) and "streamed 3" in out
