#!/usr/bin/env python3
"""Time the policy benchmark's decision in OPA (the counterpart of `cargo bench --bench policy`).

Usage, from the repository root (no Makefile needed):

    cargo bench -p fidomesh --bench policy   # writes target/policy-bench/{data,input,verdict}.json
    "$(scripts/conformance/setup-venv.sh)" scripts/conformance/opa_bench.py [--runs 200] [--warmup 20]

Options: --dir DIR (default target/policy-bench), --policies DIR (default policies), --runs N,
--warmup N, --criterion DIR (default target/criterion/policy: the regorus medians of the last
`cargo bench` run are printed alongside when present), --json (the figures as one JSON object
on stdout too).

What is evaluated: the same bundle (policies/*.rego), the same data document (data.json: the
bundle's data.json deep-merged with {"fidomesh": <facts of 10,000 authenticators, 400 roles and
2,000 bindings>}), the same input (input.json: a ~3 KB Authenticator CREATE and its requester),
and the same query the webhook answers: data.fidomesh.admission.deny and .warn. The codes OPA
returns are checked against verdict.json (what regorus decided); a mismatch exits 1.

What is measured (one OpaEngine, policies and data added once; the bindings keep a prepared
query per query string, so every timed call after the first reuses the prepared query, as
regorus reuses its prepared engine):

  decision  one `engine.eval_query(QUERY, input)` call: Python json.dumps of the input, the
            ctypes call, Go's JSON decoding of the input into OPA values, the evaluation of
            deny and warn, Go's JSON encoding of the result and Python's json.loads of it.
  baseline  the same call with the trivial query `x := true` and the same input: the bindings'
            overhead and the input transfer, with no policy evaluation.
  net       decision - baseline (medians): OPA evaluating the rules, without the transfer.

The regorus figure `policy/uncached_decision` includes its own input conversion (serde_json to
regorus values) and the result conversion, so it lies between `net` and `decision` in what it
covers. Medians over --runs timed calls (after --warmup untimed ones), in microseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

try:
    from opa_bindings import OpaEngine, OpaError
except ImportError:  # pragma: no cover - reported to the user
    sys.exit(
        "opa_bench.py: the OPA bindings are missing; run it with the venv's python:\n"
        '  "$(scripts/conformance/setup-venv.sh)" scripts/conformance/opa_bench.py'
    )

REPO = Path(__file__).resolve().parents[2]
QUERY = "deny := data.fidomesh.admission.deny; warn := data.fidomesh.admission.warn"
BASELINE = "x := true"


def codes(items):
    return sorted({item.get("code") for item in items if isinstance(item, dict)})


def timed(fn, runs: int, warmup: int):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000.0)
    samples.sort()
    return {
        "median_us": statistics.median(samples),
        "min_us": samples[0],
        "p90_us": samples[min(len(samples) - 1, int(len(samples) * 0.9))],
        "runs": runs,
    }


def criterion_medians(directory: Path):
    """The medians of the last `cargo bench --bench policy` run, in microseconds."""
    out = {}
    for name in ("uncached_decision", "cached_decision"):
        path = directory / name / "new" / "estimates.json"
        try:
            out[name] = json.loads(path.read_text(encoding="utf-8"))["median"]["point_estimate"] / 1000.0
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=REPO / "target" / "policy-bench")
    parser.add_argument("--policies", type=Path, default=REPO / "policies")
    parser.add_argument("--criterion", type=Path, default=REPO / "target" / "criterion" / "policy",
                        help="where criterion keeps the Rust figures, printed alongside")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    files = {name: args.dir / f"{name}.json" for name in ("data", "input", "verdict")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        sys.exit(
            f"opa_bench.py: missing {', '.join(missing)}; run the Rust benchmark first:\n"
            "  cargo bench -p fidomesh --bench policy"
        )
    data = json.loads(files["data"].read_text(encoding="utf-8"))
    input_doc = json.loads(files["input"].read_text(encoding="utf-8"))
    expected = json.loads(files["verdict"].read_text(encoding="utf-8"))
    modules = sorted(args.policies.glob("*.rego"))
    if not modules:
        sys.exit(f"opa_bench.py: no *.rego modules in {args.policies}")

    engine = OpaEngine()
    start = time.perf_counter()
    for path in modules:
        engine.add_policy(path.name, path.read_text(encoding="utf-8"))
    engine.add_data(data)
    load_s = time.perf_counter() - start

    start = time.perf_counter()
    try:
        results = engine.eval_query(QUERY, input_doc)
    except OpaError as err:
        sys.exit(f"opa_bench.py: OPA could not evaluate the benchmark input: {err}")
    first_ms = (time.perf_counter() - start) * 1000.0
    if len(results) != 1:
        sys.exit(f"opa_bench.py: {len(results)} results for {QUERY}")
    got = {"deny": codes(results[0]["deny"]), "warn": codes(results[0]["warn"])}
    want = {"deny": sorted(expected.get("deny", [])), "warn": sorted(expected.get("warn", []))}
    if got != want:
        print(f"opa_bench.py: OPA decided {got}, regorus decided {want}", file=sys.stderr)
        return 1

    # the data really is there (a wrong path would make every lookup silently empty)
    seen = engine.eval_query("n := count(data.fidomesh.authenticators)")
    authenticators = seen[0]["n"] if seen else 0
    if authenticators != len(data.get("fidomesh", {}).get("authenticators", {})) or not authenticators:
        print(f"opa_bench.py: OPA sees {authenticators} authenticators in the data", file=sys.stderr)
        return 1

    decision = timed(lambda: engine.eval_query(QUERY, input_doc), args.runs, args.warmup)
    baseline = timed(lambda: engine.eval_query(BASELINE, input_doc), args.runs, args.warmup)
    net = decision["median_us"] - baseline["median_us"]
    engine.close()

    input_bytes = len(json.dumps(input_doc, separators=(",", ":")).encode())
    data_bytes = files["data"].stat().st_size
    print(f"OPA (opa-golib-python-bindings), {len(modules)} modules, data {data_bytes} bytes, "
          f"input {input_bytes} bytes; verdict deny {got['deny']} warn {got['warn']} (= regorus)")
    print(f"setup: policies + data {load_s * 1000.0:.0f} ms, first evaluation (prepares the query) "
          f"{first_ms:.1f} ms")
    for name, r in (("decision", decision), ("baseline", baseline)):
        print(f"{name:<9} median {r['median_us']:8.1f} us   min {r['min_us']:8.1f} us   "
              f"p90 {r['p90_us']:8.1f} us   ({r['runs']} runs)")
    print(f"{'net':<9} median {net:8.1f} us   (decision - baseline)")
    regorus = criterion_medians(args.criterion)
    for name, median in regorus.items():
        print(f"regorus policy/{name}: median {median:8.1f} us (criterion, {args.criterion})")
    if args.json:
        json.dump({"decision": decision, "baseline": baseline, "net_median_us": net,
                   "input_bytes": input_bytes, "verdict": got,
                   "regorus_median_us": regorus}, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
