"""scripts/supervise.py: a crashed process is restarted, the others keep running, and
SIGTERM stops them all (what `make run` relies on instead of honcho)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_crashed_process_is_restarted_and_sigterm_stops_all(tmp_path):
    marker = tmp_path / "steady.pid"
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"steady: {sys.executable} -c \"import os,time; open('{marker}','w').write(str(os.getpid())); "
        "print('steady up', flush=True); time.sleep(60)\"\n"
        f"crashy: {sys.executable} -c \"print('crashy up', flush=True); raise SystemExit(3)\"\n"
        f"once: {sys.executable} -c \"print('once done', flush=True)\"\n"
    )
    log = tmp_path / "out.log"
    with open(log, "w") as out:
        sup = subprocess.Popen([sys.executable, str(REPO / "scripts" / "supervise.py"), str(procfile),
                                "--min-backoff", "0.2"], stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while log.read_text().count("crashy up") < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            text = log.read_text()
            assert text.count("crashy up") >= 3, text  # restarted after each crash
            assert "crashed (exit code 3); restarting in" in text
            assert text.count("steady up") == 1 and sup.poll() is None  # the others keep running
            assert re.search(r"once +\| exited \(0\); not restarted", text), text
            steady_pid = int(marker.read_text())
            sup.send_signal(signal.SIGTERM)
            assert sup.wait(timeout=15) == 0
        finally:
            if sup.poll() is None:
                sup.kill()
    assert subprocess.run(["kill", "-0", str(steady_pid)], capture_output=True).returncode != 0  # stopped too
