"""How long `nncgan check` takes on the hostile graphs of tests/test_hostile_graphs.py.

A benchmark, not a test: the property tests there assert what `check` answers (accepted, or
problems reported, never a traceback or a written file) for the same derandomized cases every run;
how long each answer takes depends on the machine and its load, so it is measured here.

    .venv/bin/python bench/hostile_check_times.py [--limit 5] [--mutations 700] [--texts 400]

Prints the number of cases, the median and the slowest check times, and fails (exit 1) when one
check takes longer than --limit seconds: a hang or a blow-up on some input.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import test_hostile_graphs as T  # noqa: E402  (its strategies and its check())
from hypothesis import given  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=5.0, help="seconds one check may take")
    ap.add_argument("--mutations", type=int, default=700, help="mutated graphs (the test's number)")
    ap.add_argument("--texts", type=int, default=400, help="random YAML texts (the test's number)")
    args = ap.parse_args()
    import conftest  # noqa: F401  (registers the suite's derandomized hypothesis profile)
    times = []

    def timed(text):
        start = time.perf_counter()
        T.check(text)
        times.append((time.perf_counter() - start, text))

    T.fast(args.mutations)(given(T.mutated_graph())(lambda data: timed(T.dump(data))))()
    T.fast(args.texts)(given(T.yaml_text)(timed))()
    slowest = sorted(times, key=lambda t: t[0])[-3:]
    print(f"{len(times)} checks: median {statistics.median(t for t, _ in times) * 1000:.1f} ms, "
          f"slowest {', '.join(f'{t:.2f} s' for t, _ in slowest)}")
    if slowest[-1][0] > args.limit:
        print(f"slowest case ({slowest[-1][0]:.1f} s > {args.limit} s):\n{slowest[-1][1][:2000]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
