#!/usr/bin/env python3
"""Run a Procfile's processes and keep them running (`make run`'s embedded profile).

honcho stops every process when one dies, so a worker killed by the OOM killer took the
web server with it. Here a process that crashes (non-zero exit, or killed by a signal) is
restarted after a back-off (1 s, doubling to 30 s; back to 1 s once it has run a minute);
one that exits 0 (say, ``announce_ready --exit``) is left stopped. ``--metrics-dir`` empties
prometheus_client's multiprocess folder and sets ``PROMETHEUS_MULTIPROC_DIR`` for every process. SIGINT/SIGTERM are
forwarded to every main process, whose process group gets SIGKILL after 10 s. Output lines are
prefixed with the process name, as honcho did. Standard library only.

    python scripts/supervise.py deploy/Procfile.embedded [--min-backoff 1] [--metrics-dir var/prometheus-multiproc]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_BACKOFF_S, STABLE_AFTER_S, STOP_GRACE_S = 30.0, 60.0, 10.0


@dataclass
class Proc:
    name: str
    command: str
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = 1.0
    restart_at: float | None = None
    done: bool = False
    threads: list[threading.Thread] = field(default_factory=list)


def read_procfile(path: Path) -> list[Proc]:
    procs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise SystemExit(f"{path}:{number}: expected 'name: command', got {line!r}")
        procs.append(Proc(name.strip(), command.strip()))
    if not procs:
        raise SystemExit(f"{path}: no processes")
    return procs


_print_lock = threading.Lock()


def say(name: str, width: int, text: str) -> None:
    with _print_lock:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {name:<{width}} | {text}\n")
        sys.stdout.flush()


def start(p: Proc, width: int) -> None:
    # Its own session, so a signal reaches the process and its children (celery's pool).
    # Unbuffered, so Python processes' lines show as they happen (honcho did the same).
    p.proc = subprocess.Popen(["bash", "-c", f"exec {p.command}"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True, text=True, bufsize=1,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
    p.started, p.restart_at = time.monotonic(), None
    say(p.name, width, f"started with pid {p.proc.pid}")

    def pump(stream, proc=p) -> None:
        for line in stream:
            say(proc.name, width, line.rstrip("\n"))

    t = threading.Thread(target=pump, args=(p.proc.stdout,), daemon=True)
    t.start()
    p.threads.append(t)


def signal_group(p: Proc, sig: int) -> None:
    if p.proc and p.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.proc.pid, sig)


def prepare_metrics_dir(path: Path) -> None:
    """Empty the multiprocess metrics folder (samples of an earlier run's processes would be
    summed with this run's) and name it to every process started from here."""
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*.db"):
        leftover.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("procfile", type=Path)
    parser.add_argument("--min-backoff", type=float, default=1.0, help="first restart delay, seconds")
    parser.add_argument("--metrics-dir", type=Path, default=None,
                        help="prometheus_client multiprocess folder: emptied now and given to every process "
                             "as PROMETHEUS_MULTIPROC_DIR (docs/operations.md)")
    args = parser.parse_args(argv)
    if args.metrics_dir is not None:
        prepare_metrics_dir(args.metrics_dir)
    procs = read_procfile(args.procfile)
    width = max(len(p.name) for p in procs)
    stopping = threading.Event()

    def on_signal(signum, _frame) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for p in procs:
        p.backoff = args.min_backoff
        start(p, width)
    while not stopping.is_set():
        now = time.monotonic()
        for p in procs:
            if p.done:
                continue
            if p.restart_at is not None:
                if now >= p.restart_at:
                    start(p, width)
                continue
            rc = p.proc.poll() if p.proc else None
            if rc is None:
                continue
            if rc == 0:
                say(p.name, width, "exited (0); not restarted")
                p.done = True
                continue
            if now - p.started > STABLE_AFTER_S:
                p.backoff = args.min_backoff
            how = f"killed by signal {-rc}" if rc < 0 else f"exit code {rc}"
            say(p.name, width, f"crashed ({how}); restarting in {p.backoff:g} s")
            p.restart_at = now + p.backoff
            p.backoff = min(p.backoff * 2, MAX_BACKOFF_S)
        stopping.wait(0.2)
    say("supervise", width, "stopping every process")
    for p in procs:  # the main process only: celery then shuts its pool down warmly
        if p.proc and p.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        if p.proc is None:
            continue
        try:
            p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(p, signal.SIGKILL)
            p.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.proc.pid, signal.SIGKILL)  # anything it left behind in its group
    return 0


if __name__ == "__main__":
    sys.exit(main())
