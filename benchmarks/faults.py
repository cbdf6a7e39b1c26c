"""Fault injection: every scenario of "what happens when ..." run for real, one line each.

    python -m benchmarks.faults            # all fault scenarios (a few minutes on 2 cores)
    python -m benchmarks.faults -k bomb    # those whose name matches

The scenarios are the test suite's tests marked `fault` (kill -9 mid-training, two runs on one
output, damaged checkpoints, image bombs under a memory cap, crafted files, bad configuration, ...):
one definition, run by CI with everything else and listed here with their outcome.
"""
from __future__ import annotations

import argparse
import os
import sys

import pytest


class _OneLinePerScenario:
    def __init__(self):
        self.lines: list[str] = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}[report.outcome]
            where, _, name = report.nodeid.partition("::")
            scenario = name.replace("test_", "", 1).replace("_", " ")
            line = f"{outcome} {scenario}  [{os.path.basename(where)}]"
            if report.skipped and isinstance(report.longrepr, tuple):
                line += f" ({report.longrepr[2]})"
            if report.failed:  # pytest's "E ..." lines say what failed; else the last line
                text = report.longreprtext.strip().splitlines() or [""]
                errors = [t[1:].strip() for t in text if t.startswith("E ")] or text[-1:]
                line += "\n     " + " | ".join(errors[:3])[:500]
            self.lines.append(line)
            print(line, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", metavar="EXPRESSION", help="only scenarios whose name matches (pytest -k)")
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    plugin = _OneLinePerScenario()
    # Our own one line per scenario replaces pytest's terminal report.
    pytest_args = [os.path.join(root, "tests"), "-m", "fault", "-p", "no:terminal", "-p", "no:cacheprovider"]
    if args.k:
        pytest_args += ["-k", args.k]
    code = pytest.main(pytest_args, plugins=[plugin])
    failed = sum(line.startswith("FAIL") for line in plugin.lines)
    print(f"{len(plugin.lines)} scenarios, {failed} failed")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
