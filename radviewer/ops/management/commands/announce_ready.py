"""`make run`'s last process: waits until the web server answers and both workers consume
their queues, then prints where to log in and the demo password in a box -- the last thing
on the screen, not buried under start-up logs. Then it idles (a Procfile runner such as honcho stops every process
when one exits)."""

import signal
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from radviewer.accounts.services import demo_password_resolve
from radviewer.ops.models import WorkerHeartbeat
from radviewer.ops.tasks import record_heartbeat

QUEUES = ("inference", "training")


class Command(BaseCommand):
    help = "Print the login box once the web server and workers are up (make run)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--timeout", type=float, default=300.0)
        parser.add_argument("--exit", action="store_true", help="exit after printing (tests)")

    def handle(self, *args, url, timeout, exit, **opts):
        started, deadline = timezone.now(), time.monotonic() + timeout
        missing = self._wait(url.rstrip("/"), started, deadline)
        time.sleep(1.0)  # let the other processes' start-up lines reach the terminal first
        password, source = demo_password_resolve(configured=settings.DEMO_PASSWORD, var_dir=settings.VAR_DIR)
        lines = [f"RadViewer is up: {url.rstrip('/')}/",
                 "", "log in as  radiologist  (reading)   or  mladmin  (ML admin)",
                 f"password   {password}", "",
                 f"password {source.replace(str(settings.BASE_DIR) + '/', '')}: the same on every run;",
                 "Ctrl-C stops web, workers and beat"]
        if missing:
            lines += ["", f"NOT READY after {timeout:.0f} s: {'; '.join(missing)}"]
        width = max(len(line) for line in lines) + 4
        rule = "+" + "-" * width + "+"
        box = [rule, *(f"|  {line.ljust(width - 4)}  |" for line in lines), rule]
        self.stdout.write("\n" + "\n".join(box) + "\n")
        self.stdout.flush()
        if not exit:
            signal.pause()

    def _wait(self, url: str, started, deadline: float) -> list[str]:
        web = False
        sent: dict[str, float] = {}
        while time.monotonic() < deadline:
            if not web:
                try:
                    with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:  # noqa: S310 (loopback URL of our own server)
                        web = resp.status == 200
                except (urllib.error.URLError, OSError):
                    web = False
            seen = set(WorkerHeartbeat.objects.filter(queue__in=QUEUES, seen_at__gte=started)
                       .values_list("queue", flat=True))
            for queue in QUEUES:
                if queue not in seen and time.monotonic() - sent.get(queue, -1e9) > 10:
                    # A worker answers it; one that starts later discards it (a stale heartbeat
                    # would claim a worker was seen when this wait had long given up).
                    record_heartbeat.apply_async(kwargs={"queue": queue}, queue=queue, expires=30)
                    sent[queue] = time.monotonic()
            if web and seen >= set(QUEUES):
                return []
            time.sleep(0.5)
        missing = [] if web else [f"web server at {url}"]
        seen = set(WorkerHeartbeat.objects.filter(queue__in=QUEUES, seen_at__gte=started)
                   .values_list("queue", flat=True))
        return missing + [f"{q} worker" for q in QUEUES if q not in seen]
