"""Validate DICOM SRs with dicom3tools' ``dciodvfy`` (the IOD checker) and dcmtk's ``dsrdump``.

``dciodvfy`` prints one line per finding, ``Error - ...`` or ``Warning - ...``; ``dsrdump``
reads the SR document tree and prints ``E: ...`` where it cannot. A written SR must have no
errors from either. Warnings are returned so a test can look at them. Both binaries are
required: CI fails without them (scripts/ci_debian_packages.sh installs ``dicom3tools`` and
``dcmtk``).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass

from tests.support.services import require_binary


@dataclass(frozen=True)
class Verdict:
    errors: list[str]
    warnings: list[str]
    output: str


def dciodvfy(data: bytes) -> Verdict:
    """Run ``dciodvfy`` on Part 10 ``data``; every ``Error`` and ``Warning`` line, parsed."""
    binary = require_binary("dciodvfy", hint="Debian package dicom3tools")
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
        fh.write(data)
        fh.flush()
        run = subprocess.run([binary, "-new", fh.name], capture_output=True, text=True, timeout=60, check=False)
    output = run.stdout + run.stderr
    lines = [line.strip() for line in output.splitlines()]
    return Verdict(errors=[line for line in lines if line.startswith("Error")],
                   warnings=[line for line in lines if line.startswith("Warning")], output=output)


def dsrdump(data: bytes) -> Verdict:
    """Run dcmtk's ``dsrdump`` on an SR; its ``E:`` lines are errors, ``W:`` lines warnings."""
    binary = require_binary("dsrdump", hint="Debian package dcmtk")
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
        fh.write(data)
        fh.flush()
        run = subprocess.run([binary, fh.name], capture_output=True, text=True, timeout=60, check=False)
    output = run.stdout + run.stderr
    lines = [line.strip() for line in output.splitlines()]
    errors = [line for line in lines if line.startswith("E:")]
    if run.returncode != 0:
        errors.append(f"dsrdump exited with {run.returncode}")
    return Verdict(errors=errors, warnings=[line for line in lines if line.startswith("W:")], output=output)


def assert_valid_dicom(data: bytes) -> Verdict:
    """Fail unless ``data`` is a valid SR for dciodvfy and dsrdump reads its document tree.

    Returns dciodvfy's verdict (its warnings are the ones worth reading).
    """
    verdict = dciodvfy(data)
    assert not verdict.errors, "dciodvfy found errors:\n" + "\n".join(verdict.errors)
    assert verdict.output.strip(), "dciodvfy printed nothing: not a DICOM file it could read?"
    tree = dsrdump(data)
    assert not tree.errors, "dsrdump found errors:\n" + "\n".join(tree.errors)
    return verdict
