"""`make run` on a machine without Python 3.11 or npm says what is missing and how to get it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_prereqs.sh"


def _bin(tmp_path: Path, *, python_version: str | None, npm: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "dirname"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    if python_version:
        fake = bin_dir / "python3"
        major, minor = python_version.split(".")
        fake.write_text(f"#!{shutil.which('bash')}\n"
                        f"[ \"$1\" = -c ] && exec {sys.executable} -c "
                        f"\"import sys; sys.exit(0 if ({major}, {minor}) == (3, 11) else 1)\"\n")
        fake.chmod(0o755)
    if npm:
        (bin_dir / "npm").write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / "npm").chmod(0o755)
    return bin_dir


def run(bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "bash"), str(SCRIPT)], env={"PATH": str(bin_dir)},
                          capture_output=True, text=True, timeout=30)


def test_missing_python_311_is_named_with_how_to_install(tmp_path):
    result = run(_bin(tmp_path, python_version="3.9", npm=True))
    assert result.returncode == 1
    assert "needs Python 3.11" in result.stderr and "apt-get install python3.11" in result.stderr


def test_missing_npm_is_named_with_how_to_install(tmp_path):
    result = run(_bin(tmp_path, python_version="3.11", npm=False))
    assert result.returncode == 1
    assert "Node.js with npm" in result.stderr and "apt-get install nodejs npm" in result.stderr


def test_all_present_passes(tmp_path):
    assert run(_bin(tmp_path, python_version="3.11", npm=True)).returncode == 0
