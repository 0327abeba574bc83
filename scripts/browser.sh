#!/usr/bin/env bash
# Installs Chromium and its WebDriver (Debian's `chromium` and `chromium-driver`) for
# the dashboard's browser tests, when they are missing. Idempotent and quiet: prints
# one line saying what it found or installed. Needs root (or sudo) to install.
set -euo pipefail

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if have; then
  echo "browser: $(chromium --version 2>/dev/null | head -n1), $(chromedriver --version 2>/dev/null | head -n1 | cut -d' ' -f1-2)"
  exit 0
fi

sudo=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "browser: chromium or chromedriver missing and not root: install chromium chromium-driver" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null

if have; then
  echo "browser: installed $(chromium --version 2>/dev/null | head -n1)"
else
  echo "browser: chromium or chromedriver still missing after apt-get install" >&2
  exit 1
fi
