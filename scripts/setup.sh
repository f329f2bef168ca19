#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine: clang-19 and
# llvm-19 (to rebuild the BPF fixtures), libbpf-dev (the benchmark peer), bpftool (the
# type-dump comparison), pkg-config, g++ (libFuzzer, built by fuzz/run.sh), python3
# (the fixture manifest). Idempotent; installs only what is missing.
set -euo pipefail
for tool in cargo cc; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "setup: '$tool' is missing; install the Rust toolchain of rust-toolchain.toml and a C compiler" >&2
    exit 1
  }
done
need=()
for p in clang-19 llvm-19 libbpf-dev bpftool pkg-config g++ python3; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
