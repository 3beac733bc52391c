"""A real Orthanc (with its DICOMweb plugin) as a subprocess, for PACS round-trip tests.

Orthanc keeps its DEFAULT configuration except what a throw-away instance must have (its
own storage folders and free loopback ports, the plugin to load) and what each test names
(``extra``, e.g. the DICOMweb server that points at RadViewer). Missing Orthanc: the test
fails under CI=true and skips on a laptop (``tests.support.services.require``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import requests

from tests.support.services import free_port, require
from tests.support.worker import wait_until

ORTHANC_CANDIDATES = ("Orthanc", "/usr/sbin/Orthanc", "/usr/bin/Orthanc")
PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so")


def _find(candidates) -> str | None:
    for candidate in candidates:
        path = shutil.which(candidate) or (candidate if os.path.exists(candidate) else None)
        if path:
            return path
    return None




class OrthancProcess:
    """``with OrthancProcess(folder, extra={...}) as pacs:`` -> ``pacs.url``, ``pacs.dicom_port``."""

    def __init__(self, folder: Path, *, extra: dict[str, Any] | None = None, http_port: int | None = None,
                 dicom_port: int | None = None, auth: tuple[str, str] | None = None) -> None:
        self.folder = folder
        self.extra = extra or {}
        self.auth = auth  # for this helper's own REST calls, when the test turned authentication on
        self.http_port = http_port or free_port()
        self.dicom_port = dicom_port or free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = folder / "orthanc.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> OrthancProcess:
        binary, plugin = _find(ORTHANC_CANDIDATES), _find(PLUGIN_CANDIDATES)
        require(binary is not None and plugin is not None,
                "Orthanc with the DICOMweb plugin (apt: orthanc orthanc-dicomweb)")
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "Plugins": [plugin],
            **self.extra,
        }
        config_path = self.folder / "orthanc.json"
        config_path.write_text(json.dumps(config))
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen([binary, str(config_path)], stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._up, timeout=60, what="Orthanc /system")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {self.log()[-3000:]}")
        try:
            return requests.get(f"{self.url}/system", auth=self.auth, timeout=2).ok
        except requests.RequestException:  # not listening yet, or too busy to answer in time
            return False

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def instances_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        """The simplified tags of every instance Orthanc holds of ``study_uid``."""
        found = requests.post(f"{self.url}/tools/find",
                              json={"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}}, auth=self.auth,
                              timeout=30)
        found.raise_for_status()
        return [requests.get(f"{self.url}/instances/{i}/simplified-tags", auth=self.auth, timeout=30).json()
                for i in found.json()]

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
