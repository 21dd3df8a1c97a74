#!/usr/bin/env bash
# Creates (or reuses) the Python venv that scripts/conformance/opa_eval.py runs in
# and prints its python (everything else goes to stderr).
# Usage: [VENV=target/opa-venv] [PYTHON=python3] scripts/conformance/setup-venv.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-$(cd "$here/../.." && pwd)/target/opa-venv}"
python="${PYTHON:-python3}"
# (a venv made without ensurepip, e.g. before python3-venv was installed, has no pip: redo it)
if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/pip" ]; then
    "$python" -m venv --clear "$venv" >&2
fi
# The bindings declare Requires-Python >=3.14 but run on >=3.10 (see requirements.txt).
"$venv/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python \
    -r "$here/requirements.txt" >&2
"$venv/bin/python" -c 'import opa_bindings, yaml' >&2
echo "$venv/bin/python"
