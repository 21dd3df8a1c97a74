#!/usr/bin/env bash
# Conformance check (CI: `make conformance`): every policy case is evaluated by regorus (the
# webhook's engine, through `fidomesh test`) and by OPA (scripts/conformance/opa_eval.py), and the
# deny and warn code sets of the two engines are compared case by case.
#
#   scripts/conformance/run.sh [POLICIES_DIR]        (default: policies)
#
# Environment:
#   FIDOMESH  the fidomesh binary            (default: target/release/fidomesh; build it first:
#             cargo build --release -p fidomesh, which `make conformance` does)
#   VENV      the Python venv for OPA        (default: target/opa-venv; created when missing)
#   PYTHON    the python3 that creates it    (default: python3)
#   QUIET=1   print only differences and totals, not one line per case
#
# Exit status: 0 when both engines decide every case alike and as expected; 1 on any difference,
# unmet expectation, or when no case was compared; 2 when a tool could not run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

policies="${1:-policies}"
fidomesh="${FIDOMESH:-target/release/fidomesh}"
export VENV="${VENV:-$repo/target/opa-venv}"

fail() {
    echo "conformance: $*" >&2
    exit 2
}

[ -d "$policies" ] || fail "no policy directory $policies"
[ -d "$policies/tests" ] || fail "no test cases: $policies/tests is missing"
[ -x "$fidomesh" ] || fail "$fidomesh not found; build it first: cargo build --release -p fidomesh"
command -v "${PYTHON:-python3}" >/dev/null 2>&1 || fail "${PYTHON:-python3} is not installed"

echo "conformance: preparing the OPA venv in $VENV" >&2
if ! python="$(bash "$here/setup-venv.sh")"; then
    fail "could not set up the OPA venv in $VENV (needs python3 -m venv, i.e. the python3-venv package on Debian, and access to PyPI)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/fidomesh-conformance.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# regorus: exit 0 = every case as expected, 1 = some case not (listed, compared below), other = error.
echo "conformance: regorus: $fidomesh test $policies" >&2
rc=0
"$fidomesh" test "$policies" >"$work/regorus.txt" 2>"$work/regorus.err" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    cat "$work/regorus.err" "$work/regorus.txt" >&2
    fail "fidomesh test failed to run (exit $rc)"
fi

# OPA: exit 0 = every case evaluated, 1 = some case raised an error (recorded per case), other = failure.
echo "conformance: OPA: opa_eval.py $policies" >&2
rc=0
"$python" "$here/opa_eval.py" "$policies" >"$work/opa.json" 2>"$work/opa.err" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    cat "$work/opa.err" >&2
    fail "opa_eval.py failed to run (exit $rc)"
fi

quiet=()
if [ "${QUIET:-0}" = 1 ]; then
    quiet=(--quiet)
fi
"$python" "$here/compare.py" "${quiet[@]}" --opa "$work/opa.json" --regorus "$work/regorus.txt" "$policies"
