#!/usr/bin/env python3
"""Evaluate the fidomesh policy cases with OPA (the reference engine).

    opa_eval.py [--check] [--messages] [--case NAME] [POLICIES_DIR [TESTS_DIR]]

POLICIES_DIR (default: policies/ of this repository) holds the *.rego modules
and the *.json data files the webhook loads; TESTS_DIR (default:
POLICIES_DIR/tests) holds data.yaml (the shared data fixture) and one
*.yaml file of cases per rule family (format: policies/README.md).

For every case the data document is the deep merge of, in this order:
POLICIES_DIR/*.json (sorted by name), TESTS_DIR/data.yaml, the case's `data`
(objects merge key by key; anything else replaces). The input is the case's
`input`. The script evaluates data.fidomesh.admission.deny and .warn with OPA
(embedded through opa-golib-python-bindings) and prints one JSON object,
{case_name: {"deny": [sorted codes], "warn": [sorted codes]}}, to stdout.

--check   compare with each case's expected `deny` and `warn` code sets; list
          every mismatch on stderr, print "N passed, N failed" and exit 1 when
          any case failed (or could not be evaluated).
--messages  print the full {code, msg} objects instead of the codes.
--case    evaluate only the named case (repeatable).

YAML is read with the YAML 1.2 core schema (as serde_yaml reads it, which the
webhook's own test runner uses): `yes`/`no`/`on`/`off` and dates stay strings.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import yaml

try:
    from opa_bindings import OpaEngine, OpaError
except ImportError:  # pragma: no cover - reported to the user
    sys.exit(
        "opa_eval.py: the OPA bindings are missing; install them with\n"
        "  pip install --ignore-requires-python -r scripts/conformance/requirements.txt"
    )

REPO = Path(__file__).resolve().parents[2]
DENY = "data.fidomesh.admission.deny"
WARN = "data.fidomesh.admission.warn"
QUERY = f"deny := {DENY}; warn := {WARN}"


# --- YAML 1.2 core schema -------------------------------------------------


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's implicit types only."""


Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", list("~nN") + [""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
]:
    Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


def _construct_int(loader, node):
    value = loader.construct_scalar(node)
    return int(value, 16) if value.startswith("0x") else int(value, 10)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _construct_mapping(loader, node, deep=False):
    # serde_yaml refuses duplicate keys; PyYAML would keep the last one silently
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


Yaml12Loader.add_constructor(
    "tag:yaml.org,2002:map",
    lambda loader, node: _construct_mapping(loader, node, deep=True),
)


def load_yaml(path: Path):
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=Yaml12Loader)


# --- data -------------------------------------------------------------------


def deep_merge(base, overlay):
    """Objects merge key by key; anything else replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overlay)


def base_data(policies: Path, tests: Path):
    data = {}
    for path in sorted(policies.glob("*.json")):
        with path.open(encoding="utf-8") as f:
            data = deep_merge(data, json.load(f))
    fixture = tests / "data.yaml"
    if fixture.exists():
        data = deep_merge(data, load_yaml(fixture) or {})
    return data


def load_cases(tests: Path):
    cases = []
    seen = {}
    for path in sorted(tests.glob("*.yaml")):
        if path.name == "data.yaml":
            continue
        doc = load_yaml(path) or {}
        for case in doc.get("cases") or []:
            name = case.get("name")
            if not name:
                raise SystemExit(f"{path}: a case has no name")
            if name in seen:
                raise SystemExit(f"{path}: case {name} also defined in {seen[name]}")
            seen[name] = path.name
            cases.append((path.name, case))
    return cases


# --- evaluation -------------------------------------------------------------


def load_policies(policies: Path):
    modules = sorted(policies.glob("*.rego"))
    if not modules:
        raise SystemExit(f"{policies}: no *.rego modules")
    return [(p.name, p.read_text(encoding="utf-8")) for p in modules]


def evaluate(modules, data, input_doc):
    """Returns (deny, warn) as lists of {code, msg} objects."""
    with OpaEngine() as engine:
        for name, source in modules:
            engine.add_policy(name, source)
        engine.add_data(data)
        results = engine.eval_query(QUERY, input_doc)
    if len(results) != 1:
        raise OpaError("undefined", f"{len(results)} results for {QUERY}")
    return results[0]["deny"], results[0]["warn"]


def codes(items):
    return sorted({item.get("code") for item in items if isinstance(item, dict)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policies", nargs="?", type=Path, default=REPO / "policies")
    parser.add_argument("tests", nargs="?", type=Path)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--messages", action="store_true")
    parser.add_argument("--case", action="append", default=[])
    args = parser.parse_args(argv)
    tests = args.tests or args.policies / "tests"

    modules = load_policies(args.policies)
    shared = base_data(args.policies, tests)
    cases = load_cases(tests)
    if args.case:
        cases = [(f, c) for f, c in cases if c["name"] in set(args.case)]

    report = {}
    failures = []
    for file_name, case in cases:
        name = case["name"]
        data = deep_merge(shared, case.get("data") or {})
        try:
            deny, warn = evaluate(modules, data, case.get("input") or {})
        except OpaError as err:
            report[name] = {"error": str(err)}
            failures.append(f"{file_name}: {name}: OPA error: {err}")
            continue
        if args.messages:
            report[name] = {
                "deny": sorted(deny, key=json.dumps),
                "warn": sorted(warn, key=json.dumps),
            }
        else:
            report[name] = {"deny": codes(deny), "warn": codes(warn)}
        if args.check:
            for key, got in (("deny", codes(deny)), ("warn", codes(warn))):
                want = sorted(set(case.get(key) or []))
                if got != want:
                    failures.append(f"{file_name}: {name}: {key} expected {want}, got {got}")

    json.dump(report, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    if args.check:
        failed = {line.split(": ")[1] for line in failures}
        for line in failures:
            print(line, file=sys.stderr)
        print(f"{len(report) - len(failed)} passed, {len(failed)} failed", file=sys.stderr)
        return 1 if failed else 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
