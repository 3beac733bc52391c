#!/usr/bin/env bash
# Says what is missing to build RadViewer and how to get it, instead of failing later.
set -euo pipefail

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

case "${1:-}" in
  --print-python) find_python; exit $? ;;
  --npm)
    if ! command -v npm >/dev/null 2>&1; then
      echo "RadViewer needs Node.js with npm to install its pinned front-end packages (htmx)." >&2
      echo "Install it with your package manager (Debian/Ubuntu: apt-get install nodejs npm;" >&2
      echo "macOS: brew install node) and run the command again." >&2
      exit 1
    fi
    exit 0 ;;
esac

if ! find_python >/dev/null; then
  echo "RadViewer needs Python 3.11 (PyTorch 2.13 and Django 5.2 LTS are pinned for it)." >&2
  echo "Install it (Debian/Ubuntu: apt-get install python3.11 python3.11-venv; macOS: brew install" >&2
  echo "python@3.11; or pyenv install 3.11) or point PYTHON=/path/to/python3.11 at it." >&2
  exit 1
fi
"$0" --npm
