#!/usr/bin/env bash
# Installs promtool (Debian package `prometheus`) when it is missing, for the metrics
# tests (`promtool check metrics` on the engine's /metrics output). Idempotent; quiet
# when promtool is already there. The tests fail, not skip, without it when
# DAGFORGE_TEST_PROMTOOL=required (as .ci/run sets).
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool.sh: promtool missing and no apt-get here; install Prometheus's promtool" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "promtool.sh: installing the Debian package prometheus (for promtool)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# Only the package: its service is not wanted (policy-rc.d keeps it from starting).
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null 2>&1
