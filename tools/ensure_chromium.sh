#!/usr/bin/env bash
# Make sure a Chromium for the browser widget test (tests/browser) is on PATH.
# Idempotent: does nothing when one is there.  Installs Debian's `chromium`
# with apt-get when run as root (as CI is); otherwise says why not and leaves
# the test to skip (or, under CI=true, to fail).
set -uo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: no chromium on PATH and no root apt-get to install it; the browser widget test will skip" >&2
  exit 0
fi
echo "ensure_chromium: installing Debian's chromium for the browser widget test (about 1 min)" >&2
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  exit 0
fi
echo "ensure_chromium: apt-get could not install chromium; the browser widget test will skip (fail under CI)" >&2
exit 0
