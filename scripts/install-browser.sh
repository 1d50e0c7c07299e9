#!/usr/bin/env bash
# The browser tier's browser: Debian's chromium (and chromium-driver, for Selenium users), installed with apt-get
# when /usr/bin/chromium is missing. Playwright drives it through `executable_path`; we never run
# `playwright install` (it downloads a browser build of its own, which this project does not rely on).
# Exit status: 0 when /usr/bin/chromium is there (already, or now), 1 when it could not be installed.
set -uo pipefail
CHROMIUM="${DAILYFEED_CHROMIUM:-/usr/bin/chromium}"
say() { echo "install-browser: $*"; }

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "no $CHROMIUM and no apt-get on this machine: install Chromium and set DAILYFEED_CHROMIUM"
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else say "apt-get needs root (or sudo)"; exit 1; fi
fi
say "installing chromium and chromium-driver with apt-get (Debian packages)"
if ! $SUDO apt-get update -qq; then
    say "apt-get update failed"
    exit 1
fi
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver \
        fonts-dejavu-core >/dev/null; then
    say "apt-get install chromium chromium-driver failed"
    exit 1
fi
[ -x "$CHROMIUM" ] || { say "installed, but $CHROMIUM is still missing"; exit 1; }
say "installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
