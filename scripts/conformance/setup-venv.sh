#!/usr/bin/env bash
# Creates (or reuses) the Python venv that scripts/conformance/opa_eval.py runs in
# and prints its python. Usage: VENV=/tmp/opa-venv scripts/conformance/setup-venv.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-/tmp/opa-venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >&2
fi
# The bindings declare Requires-Python >=3.14 but run on >=3.10 (see requirements.txt).
"$venv/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python \
    -r "$here/requirements.txt" >&2
"$venv/bin/python" -c 'import opa_bindings, yaml' >&2
echo "$venv/bin/python"
