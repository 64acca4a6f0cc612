#!/usr/bin/env bash
# The crash test with 20 rounds per store (the test suite runs 6): the server killed with
# SIGKILL during batch ingest 20 times, the chain verified and every acknowledged record
# present exactly once after each restart. About 3 minutes per store on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SOCIALCREDIT_CRASH_ROUNDS="${1:-20}" exec .venv/bin/pytest -q -p no:cacheprovider \
  "tests/test_service_cli.py::test_a_killed_server_loses_no_acknowledged_record"
