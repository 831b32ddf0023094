#!/usr/bin/env bash
# What the test suite needs on a fresh machine, installed or started only when missing:
# Chromium + ChromeDriver and Firefox ESR (Debian), geckodriver (crates.io), PostgreSQL running.
# README's test command and .ci/run both call it.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== browsers for the UI tests (Debian's chromium + chromedriver, firefox-esr + geckodriver)"
if ! command -v chromedriver >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/firefox-esr ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver firefox-esr >/dev/null
fi
# Debian packages no geckodriver; crates.io has Mozilla's own (built from source, ~3 min).
export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
if ! command -v geckodriver >/dev/null 2>&1; then
  cargo install geckodriver --locked --quiet
fi
chromium --version || true
firefox-esr --version || true
# Not `| head -1`: geckodriver panics when its reader closes the pipe early (EPIPE).
geckodriver --version 2>&1 | sed -n 1p


echo "== PostgreSQL for the PostgreSQL driver's tests (the machine starts it; start it if it stopped)"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432
