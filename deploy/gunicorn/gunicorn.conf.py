# gunicorn settings for the production profile (deploy/compose.yaml, deploy/k8s).
#
# Sync workers (one request per process, no threads): the web's requests are CPU-bound
# (a STOW-RS store ~21 ms of CPU, a status poll ~4.5 ms) and threads in one process share
# its GIL. On the 2-core box, 4 sync workers against 2 workers x 4 threads, 8 PACS clients on
# PostgreSQL + Redis: STOW-RS p95 123-133 ms against 149-162, poll p95 34-40 ms against 44-48,
# 30 % more polls per second (docs/benchmarks.md, "PACS API"). Slow clients never reach a
# worker: the reverse proxy in front buffers request bodies (nginx does by default). Lockouts
# and rate limits must then count in Redis (RADVIEWER_CACHE_URL), not per process. The
# embedded profile (Procfile.embedded: per-process memory cache, no proxy) keeps 2 x 4 threads.
import os

bind = "0.0.0.0:8000"
# Two per core by default; in Kubernetes os.cpu_count() is the node's, so the manifest sets
# WEB_CONCURRENCY from the pod's CPU (deploy/k8s/base/web.yaml). ~150 MB of RSS per worker.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * (os.cpu_count() or 1))
threads = int(os.environ.get("GUNICORN_THREADS") or 1)
timeout = 60
accesslog = "-"
forwarded_allow_ips = "*"  # behind the hospital's reverse proxy only; it sets REMOTE_ADDR
