#!/usr/bin/env bash
# Installs the Debian packages the browser and PACS tests drive, if they are missing.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The PACS round-trip test (tests/integration/test_orthanc_roundtrip.py) runs a real Orthanc.
{ command -v Orthanc >/dev/null 2>&1 || test -x /usr/sbin/Orthanc; } || need+=(orthanc)
test -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so || need+=(orthanc-dicomweb)
# Every DICOM SR the tests write is checked by dicom3tools' IOD validator (tests/support/dicom_validation.py).
command -v dciodvfy >/dev/null 2>&1 || need+=(dicom3tools)
command -v dsrdump >/dev/null 2>&1 || need+=(dcmtk)
# The broker-fault tests (tests/integration/test_prediction_faults.py) start and stop their
# own redis-server on a port of their own.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The monitoring tests (tests/integration/test_monitoring.py) run promtool on the alert rules
# and start a real Prometheus that scrapes a running RadViewer.
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "Debian packages present: chromium=$(command -v chromium || echo missing)" \
  "orthanc=$(command -v Orthanc || ls /usr/sbin/Orthanc 2>/dev/null || echo missing)" \
  "redis-server=$(command -v redis-server || echo missing)" \
  "orthanc-dicomweb=$(ls /usr/share/orthanc/plugins/libOrthancDicomWeb.so 2>/dev/null || echo missing)" \
  "dciodvfy=$(command -v dciodvfy || echo missing)" \
  "dsrdump=$(command -v dsrdump || echo missing)" \
  "prometheus=$(command -v prometheus || echo missing)" \
  "promtool=$(command -v promtool || echo missing)"
