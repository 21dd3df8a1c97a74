#!/usr/bin/env python3
"""Compare the decisions of regorus (the webhook) and OPA on every policy case.

    compare.py --opa OPA.json --regorus REGORUS.txt [POLICIES_DIR [TESTS_DIR]]

OPA.json is the stdout of `opa_eval.py` (without --messages): {case: {"deny":
[codes], "warn": [codes]}} or {case: {"error": "..."}}. REGORUS.txt is the
stdout of `fidomesh test POLICIES_DIR`, which reports only the cases whose
codes differ from the expected ones:

    FAIL <name> (<file>)
      expected deny [..] warn [..]
      actual   deny [..] warn [..]
      error: <evaluation error>          (optional)
    bundle sha256:...
    <N> passed, <M> failed

so regorus's codes for a case are its `actual` line when the case is listed,
and the case's expected codes otherwise. The case list comes from the YAML
files themselves (loaded exactly as opa_eval.py loads them); the script checks
that regorus ran the same number of cases.

Prints one line per case (the codes both engines decided, or both sides of a
difference), then

    conformance: N cases compared, D differences

and exits 1 when D > 0, N == 0, the case counts disagree, or a case does not
meet its expectation in either engine (listed as "expectation failures").
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from opa_eval import REPO, load_cases  # noqa: E402  (same case loader as OPA's side)

FAIL_RE = re.compile(r"^FAIL (?P<name>.+) \((?P<file>[^()]*)\)$")
CODES_RE = re.compile(r"^\s+(?P<which>expected|actual)\s+deny (?P<deny>\[.*\]) warn (?P<warn>\[.*\])$")
ERROR_RE = re.compile(r"^\s+error: (?P<error>.*)$")
TOTAL_RE = re.compile(r"^(?P<passed>\d+) passed, (?P<failed>\d+) failed$")
BUNDLE_RE = re.compile(r"^bundle (?P<digest>\S+)$")


class ParseError(Exception):
    pass


def parse_codes(text: str, line: str):
    # Rust's Debug of Vec<String> is a JSON array for plain code strings.
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ParseError(f"cannot read codes {text!r} in line {line!r}: {err}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseError(f"codes are not a list of strings in line {line!r}")
    return sorted(set(value))


def parse_regorus(text: str):
    """Returns ({name: {"deny", "warn", "error"?}} for failed cases, total, digest)."""
    failed = {}
    current = None
    in_error = False  # an evaluation error spans lines up to the next FAIL or the totals
    total = None
    digest = None
    for line in text.splitlines():
        if m := FAIL_RE.match(line):
            current = m["name"]
            in_error = False
            if current in failed:
                raise ParseError(f"case {current} reported twice")
            failed[current] = {}
        elif in_error and not BUNDLE_RE.match(line) and not TOTAL_RE.match(line):
            failed[current]["error"] += "\n" + line
        elif m := CODES_RE.match(line):
            if current is None:
                raise ParseError(f"codes outside a FAIL block: {line!r}")
            if m["which"] == "actual":
                failed[current]["deny"] = parse_codes(m["deny"], line)
                failed[current]["warn"] = parse_codes(m["warn"], line)
        elif m := ERROR_RE.match(line):
            if current is None:
                raise ParseError(f"error outside a FAIL block: {line!r}")
            failed[current]["error"] = m["error"]
            in_error = True
        elif m := BUNDLE_RE.match(line):
            digest = m["digest"]
            current = None
            in_error = False
        elif m := TOTAL_RE.match(line):
            total = (int(m["passed"]), int(m["failed"]))
            current = None
            in_error = False
        elif line.startswith("coverage ") or line.startswith("  not covered"):
            current = None
        elif line.strip():
            raise ParseError(f"unexpected line in the regorus report: {line!r}")
    if total is None:
        raise ParseError('no "N passed, M failed" line in the regorus report')
    for name, got in failed.items():
        if "deny" not in got:
            raise ParseError(f"no actual codes for failed case {name}")
    if total[1] != len(failed):
        raise ParseError(f"the report counts {total[1]} failed cases but lists {len(failed)}")
    return failed, sum(total), digest


def fmt(codes):
    return "[" + ", ".join(codes) + "]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policies", nargs="?", type=Path, default=REPO / "policies")
    parser.add_argument("tests", nargs="?", type=Path)
    parser.add_argument("--opa", type=Path, required=True, help="opa_eval.py output (JSON)")
    parser.add_argument("--regorus", type=Path, required=True, help="`fidomesh test` output")
    parser.add_argument("--quiet", action="store_true", help="print only differences and totals")
    args = parser.parse_args(argv)
    tests = args.tests or args.policies / "tests"

    cases = load_cases(tests)
    try:
        opa = json.loads(args.opa.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        print(f"conformance: cannot read the OPA results {args.opa}: {err}", file=sys.stderr)
        return 2
    try:
        regorus_failed, regorus_total, digest = parse_regorus(
            args.regorus.read_text(encoding="utf-8")
        )
    except (OSError, ParseError) as err:
        print(f"conformance: cannot read the regorus results {args.regorus}: {err}", file=sys.stderr)
        return 2

    problems = []
    names = {case["name"] for _, case in cases}
    if regorus_total != len(cases):
        problems.append(
            f"regorus ran {regorus_total} cases, the YAML files hold {len(cases)} "
            "(a file the two loaders read differently?)"
        )
    for name in sorted(set(regorus_failed) - names):
        problems.append(f"regorus reports a case the YAML files do not hold: {name}")
    for name in sorted(set(opa) - names):
        problems.append(f"OPA reports a case the YAML files do not hold: {name}")

    compared = 0
    differences = 0
    unmet = 0
    width = max((len(n) for n in names), default=0)
    for file_name, case in cases:
        name = case["name"]
        expected = {
            "deny": sorted(set(case.get("deny") or [])),
            "warn": sorted(set(case.get("warn") or [])),
        }
        rego = regorus_failed.get(name, expected)
        if name not in opa:
            problems.append(f"{file_name}: {name}: OPA did not evaluate it")
            continue
        o = opa[name]
        compared += 1
        same = (
            "error" not in o
            and "error" not in rego
            and o.get("deny") == rego["deny"]
            and o.get("warn") == rego["warn"]
        )
        met = same and rego["deny"] == expected["deny"] and rego["warn"] == expected["warn"]
        if not same:
            differences += 1
            print(f"DIFF  {name:<{width}}  ({file_name})")
            for engine, got in (("regorus", rego), ("opa", o)):
                if "error" in got:
                    error = str(got["error"]).rstrip().replace("\n", "\n" + " " * 17)
                    print(f"        {engine:<8} error: {error}")
                else:
                    print(f"        {engine:<8} deny {fmt(got['deny'])} warn {fmt(got['warn'])}")
            print(f"        expected deny {fmt(expected['deny'])} warn {fmt(expected['warn'])}")
        elif not met:
            unmet += 1
            print(f"UNMET {name:<{width}}  both deny {fmt(o['deny'])} warn {fmt(o['warn'])}; "
                  f"expected deny {fmt(expected['deny'])} warn {fmt(expected['warn'])}")
        elif not args.quiet:
            print(f"same  {name:<{width}}  deny {fmt(o['deny'])} warn {fmt(o['warn'])}")

    for p in problems:
        print(f"conformance: {p}", file=sys.stderr)
    if digest:
        print(f"regorus bundle {digest}")
    summary = f"conformance: {compared} cases compared, {differences} differences"
    if unmet:
        summary += f", {unmet} expectation failures"
    print(summary)
    if compared == 0:
        print("conformance: no case was compared", file=sys.stderr)
    return 1 if differences or unmet or problems or compared == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
