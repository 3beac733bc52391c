"""Next study with ``n``: time from the key press to the next study's image drawn on the canvas,
with and without the study page's prefetch of the next study's display image.

    python benchmarks/next_study.py [--studies 20] [--size 2048] [--dwell 1.5] [--workers 2] [--mbit 100]

Everything lives in a temporary directory: a SQLite database (embedded profile), media,
collected static files. ``--studies + 1`` studies are ingested through the upload service
(``--size`` px square chest-like PNGs, display images rendered as the inference worker
would), given a finished AI result and distinct priorities so the worklist order is fixed.
Two gunicorn servers (``--workers`` workers, 4 threads each, ``--preload``; warmed with a few
requests before timing) serve the same database, one
with the prefetch (the default) and one with ``VIEWER_PREFETCH_NEXT_STUDY = False``; a
headless chromium (Playwright) opens the top study on each in its own context and walks the
worklist with ``n``, alternating between the two so machine load hits both alike. The reader
looks at each study for ``--dwell`` seconds before pressing ``n`` (the prefetch runs then).
``--mbit`` has chromium emulate a network of that bandwidth (and 2 ms latency) instead of
loopback, where the image's transfer is nearly free.

Measured in the browser: ``t0`` just before the key press (the old page's clock), the end
at the first animation frame after viewer.js marks the canvas ``data-ready`` (the image
decoded, windowed and drawn) on the new page; both are epoch times from the same browser
(``performance.timeOrigin + performance.now()``). Includes the ``/next/`` redirect, the
page, its scripts and the image; the script also reports whether the display image came
from the browser cache (``transferSize == 0``) and the median of three parts (until the
page's HTML arrived, then until the image's bytes were there, then decode, window and draw).
Prints median / p95 / max per mode.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from benchmarks._common import markdown_table, percentile  # noqa: E402 (after the path insert)

PASSWORD = "bench-password-123"  # noqa: S105 (a throw-away user in a temporary database)
USERNAME = "bench-reader"
# Runs in every page before its own scripts: the time of the first frame after the viewer
# says it has drawn the image (MutationObserver on data-ready, then requestAnimationFrame).
FIRST_FRAME_PROBE = """
(() => {
  const now = () => performance.timeOrigin + performance.now();
  const observer = new MutationObserver(() => {
    const canvas = document.getElementById("viewer-canvas");
    if (!canvas || canvas.dataset.ready !== "true" || window.__drawn) return;
    window.__drawn = now();
    observer.disconnect();
    requestAnimationFrame(() => { window.__firstFrame = now(); });
  });
  observer.observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
})();
"""


def _setup(var_dir: str) -> None:
    Path(var_dir, "bench_settings.py").write_text(
        "import os\n"
        "from radviewer.settings.base import *  # noqa\n"
        "VIEWER_PREFETCH_NEXT_STUDY = os.environ.get('BENCH_PREFETCH', '1') == '1'\n"
    )
    sys.path.insert(0, var_dir)
    os.environ["PYTHONPATH"] = os.pathsep.join([var_dir, str(REPO), os.environ.get("PYTHONPATH", "")])
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_settings"
    os.environ["RADVIEWER_VAR_DIR"] = var_dir
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "MLFLOW_TRACKING_URI", "AWS_STORAGE_BUCKET_NAME"):
        os.environ.pop(key, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("collectstatic", verbosity=0, interactive=False)


def _image(seed: int, size: int) -> bytes:
    """A chest-like 8-bit PNG: smooth body, two lungs, mild noise (compresses like a radiograph)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 90 + 60 * np.exp(-(((xx - 0.5) / 0.45) ** 2)) + 6 * rng.standard_normal((size, size))
    for cx in (0.33, 0.67):
        img[((xx - cx) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1] -= 50
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _fill(studies: int, size: int) -> list[str]:
    """Ingest ``studies`` studies, render their display images, finish their triage; their uids
    in worklist order (highest priority first)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from clinical.models import Prediction, Study
    from clinical.selectors.worklist import WorklistFilters, worklist
    from clinical.services.display import image_display_ensure
    from clinical.services.ingest import image_ingest
    from radviewer.accounts.roles import RADIOLOGIST
    from radviewer.accounts.services import roles_sync

    roles_sync()
    reader = get_user_model().objects.create_user(username=USERNAME, password=PASSWORD)
    reader.groups.add(Group.objects.get(name=RADIOLOGIST))
    for i in range(studies):
        outcome = image_ingest(data=_image(i, size), filename=f"bench{i}.png", actor=reader)
        image_display_ensure(outcome.image)
        outcome.image.save(update_fields=["display_file"])
        Prediction.objects.filter(image=outcome.image).update(
            status=Prediction.Status.SUCCEEDED,
            top_class="lung-normal",
            confidence=0.9,
            probabilities={"lung-normal": 0.9, "lung-opacity": 0.1},
            scope="cxr",
        )
        Study.objects.filter(pk=outcome.study.pk).update(
            status=Study.Status.AWAITING_REVIEW,
            top_class="lung-normal",
            scope="cxr",
            triage_priority=round(0.99 - i * 0.01, 4),
            blinded_read=False,
        )
    return list(worklist(filters=WorklistFilters()).values_list("uid", flat=True))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(var_dir: str, *, prefetch: bool, workers: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "BENCH_PREFETCH": "1" if prefetch else "0", "PYTHONUNBUFFERED": "1"}
    log = open(Path(var_dir, f"gunicorn-{port}.log"), "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "radviewer.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            "4",
            "--timeout",
            "60",
            "--preload",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {Path(log.name).read_text()[-3000:]}") from None
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"


def _open(browser, base: str, first_uid: str, mbit: float):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_init_script(FIRST_FRAME_PROBE)
    page = context.new_page()
    if mbit:  # a reading-room network instead of loopback (Chromium's own throttling, both ways)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        rate = mbit * 1e6 / 8  # bytes per second
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 2, "downloadThroughput": rate, "uploadThroughput": rate},
        )
    page.set_default_timeout(30_000)
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    for _ in range(8):  # warm every worker (first-request imports) before anything is timed
        page.request.get(f"{base}/worklist/")
    page.goto(f"{base}/studies/{first_uid}/")
    page.wait_for_selector("#viewer-canvas[data-ready=true]")
    return page


def _step(page, next_uid: str) -> tuple[float, bool, dict[str, float]]:
    """Press ``n``; milliseconds until the next study's image is drawn, and whether the display
    image came from the browser cache."""
    from playwright.sync_api import Error as PlaywrightError

    t0 = page.evaluate("performance.timeOrigin + performance.now()")
    page.keyboard.press("n")
    # Polled from here (page.evaluate is not subject to the page's CSP; wait_for_function's
    # string predicates are, and the CSP forbids eval). The times are the page's own.
    deadline = time.monotonic() + 30
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"study {next_uid} was not drawn within 30 s")
        time.sleep(0.01)
        try:
            if page.evaluate(f"location.pathname === '/studies/{next_uid}/' && !!window.__firstFrame"):
                break
        except PlaywrightError:  # the old page's context went away mid-navigation: ask again
            continue
    end, cached, html_end, image_end = page.evaluate("""() => {
        const url = document.getElementById('viewer').dataset.displayUrl;
        const entry = performance.getEntriesByType('resource').find((e) => e.name.endsWith(url));
        const nav = performance.getEntriesByType('navigation')[0];
        return [window.__firstFrame, !!entry && entry.transferSize === 0,
                performance.timeOrigin + nav.responseEnd,
                entry ? performance.timeOrigin + entry.responseEnd : null];
    }""")
    # The parts: until the page's HTML arrived (redirect + page), then until the image's
    # bytes were there (scripts, image request or cache), then decode + window + draw.
    parts = {
        "html": html_end - t0,
        "image": (image_end - html_end) if image_end else float("nan"),
        "draw": (end - image_end) if image_end else float("nan"),
    }
    return end - t0, cached, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=20, help="key presses per mode")
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--dwell", type=float, default=1.5, help="seconds on each study before pressing n")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument(
        "--mbit",
        type=float,
        default=0,
        help="emulate a network of this many Mbit/s (2 ms latency) in chromium; 0: loopback",
    )
    args = parser.parse_args()

    from tests.support.browser import CHROMIUM_ARGS, chromium

    with tempfile.TemporaryDirectory(prefix="radviewer-next-") as var_dir:
        _setup(var_dir)
        t = time.perf_counter()
        uids = _fill(args.studies + 1, args.size)
        print(f"setup: {len(uids)} studies of {args.size} px in {time.perf_counter() - t:.1f} s", flush=True)
        from django.conf import settings
        from django.core.files.storage import default_storage

        from clinical.models import Image

        display_kb = statistics.median(default_storage.size(i.display_file.name) / 1024 for i in Image.objects.all())
        servers = {
            mode: _serve(var_dir, prefetch=mode == "prefetch", workers=args.workers)
            for mode in ("prefetch", "no prefetch")
        }
        results: dict[str, list[float]] = {mode: [] for mode in servers}
        hits: dict[str, int] = dict.fromkeys(servers, 0)
        parts: dict[str, dict[str, list[float]]] = {mode: {} for mode in servers}
        try:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
                pages = {mode: _open(browser, base, uids[0], args.mbit) for mode, (_, base) in servers.items()}
                for i, next_uid in enumerate(uids[1:], start=1):
                    order = list(pages) if i % 2 else list(reversed(pages))
                    time.sleep(args.dwell)  # the reader looks at the image; the prefetch runs
                    for mode in order:
                        ms, cached, step_parts = _step(pages[mode], next_uid)
                        results[mode].append(ms)
                        hits[mode] += cached
                        for key, value in step_parts.items():
                            parts[mode].setdefault(key, []).append(value)
                browser.close()
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
        engine = settings.DATABASES["default"]["ENGINE"]

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"\nMachine: {cpu}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f} "
        f"(1 min, at the end), Python {platform.python_version()}"
    )
    print(
        f"{args.studies} presses of n per mode, {args.size} px images (display PNG median {display_kb:.0f} KiB), "
        f"dwell {args.dwell} s, network {f'{args.mbit:g} Mbit/s + 2 ms (emulated)' if args.mbit else 'loopback'}, gunicorn {args.workers} workers x 4 threads per server, database {engine}\n"
    )
    rows = []
    for mode, values in results.items():
        rows.append(
            [
                mode,
                f"{statistics.median(values):.0f}",
                f"{percentile(values, 95):.0f}",
                f"{min(values):.0f}",
                f"{max(values):.0f}",
                f"{hits[mode]}/{len(values)}",
                f"{sum(v < 500 for v in values)}/{len(values)}",
                *(f"{statistics.median(parts[mode][k]):.0f}" for k in ("html", "image", "draw")),
            ]
        )
    header = [
        "mode",
        "median ms",
        "p95 ms",
        "min ms",
        "max ms",
        "image from cache",
        "under 500 ms",
        "median: to HTML",
        "then to image bytes",
        "then decode+draw",
    ]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
