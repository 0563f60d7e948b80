#!/usr/bin/env bash
# Control-plane faults by hand: restart or freeze a component of the fault tests' own cluster, or
# run a proxy that drops, holds or throttles one operator's traffic. Usage: tests/support/faults_cli.py.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
exec "${MODELSHIP_PYTHON:-$repo/.venv/bin/python}" -m tests.support.faults_cli "$@"
