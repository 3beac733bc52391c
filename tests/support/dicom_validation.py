"""Validate DICOM objects with dicom3tools' ``dciodvfy`` (the IOD checker), as CI does.

``dciodvfy`` prints one line per finding, ``Error - ...`` or ``Warning - ...``; a written SR
must have no errors. Warnings are returned so a test can look at them. The binary is
required: CI fails without it (scripts/ci_debian_packages.sh installs ``dicom3tools``).
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


def assert_valid_dicom(data: bytes) -> Verdict:
    """Fail with dciodvfy's errors unless ``data`` is a valid object for its IOD."""
    verdict = dciodvfy(data)
    assert not verdict.errors, "dciodvfy found errors:\n" + "\n".join(verdict.errors)
    assert verdict.output.strip(), "dciodvfy printed nothing: not a DICOM file it could read?"
    return verdict
