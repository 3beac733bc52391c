#!/usr/bin/env bash
# Copies the pinned front-end packages from node_modules into static/vendor (never from a CDN).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p static/vendor
cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
