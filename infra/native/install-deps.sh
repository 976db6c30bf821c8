#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test the project:
# the librdkafka build chain (the rdkafka crate compiles librdkafka from source),
# PostgreSQL and Redis servers, flock for the test harness, Prometheus/promtool, the
# Python the monitoring checks use and shellcheck for `make lint`. Idempotent.
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMPONENT=deps

# cmake + a C/C++ compiler + libcurl/zlib headers: librdkafka's build (rdkafka `cmake-build`).
apt_install build-essential cmake libcurl4-openssl-dev zlib1g-dev libssl-dev pkg-config \
  postgresql redis-server util-linux curl

# python3 + yaml + jsonschema: the static checks of the monitoring and compose files
# (scripts/check-monitoring.sh, scripts/monitoring_check.py).
apt_install python3 python3-yaml python3-jsonschema

# `make lint` runs shellcheck over every shell script.
apt_install shellcheck

# Prometheus (and promtool, which `make test` uses to unit-test the alert rules). Installed
# without its recommended node exporter, and its system service is disabled: the project
# runs its own instance with its own config (infra/native/prometheus.sh), on 9090 too.
if ! dpkg -s prometheus >/dev/null 2>&1; then
  log "installing Debian package: prometheus"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# The control room's browser test (make test): Debian's chromium, driven by playwright-core
# from npm (tools/control-room/browser-test, pinned in its package-lock.json).
command -v chromium >/dev/null || apt_install chromium
command -v npm >/dev/null || apt_install nodejs npm

command -v java >/dev/null || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null || apt_install maven
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
log "build and runtime dependencies present"
