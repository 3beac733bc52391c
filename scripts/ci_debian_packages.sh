#!/usr/bin/env bash
# Installs the Debian packages the browser and PACS tests drive, if they are missing.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "Debian packages present: chromium=$(command -v chromium || echo missing)"
