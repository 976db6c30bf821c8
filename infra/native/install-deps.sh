#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test the project:
# the librdkafka build chain (the rdkafka crate compiles librdkafka from source),
# PostgreSQL and Redis servers, and flock for the test harness. Idempotent.
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMPONENT=deps

# cmake + a C/C++ compiler + libcurl/zlib headers: librdkafka's build (rdkafka `cmake-build`).
apt_install build-essential cmake libcurl4-openssl-dev zlib1g-dev libssl-dev pkg-config \
  postgresql redis-server util-linux curl

command -v java >/dev/null || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null || apt_install maven
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
log "build and runtime dependencies present"
