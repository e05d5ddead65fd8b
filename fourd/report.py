"""`python -m fourd.report [--results FILE] [--out DIR]`: probe results as a markdown table and a scaling plot."""

from __future__ import annotations

import argparse
import sys

from fourd.errors import cli


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fourd.report", description=__doc__)
    parser.add_argument("--results", default="outputs/probe_results.jsonl")
    parser.add_argument("--out", default="outputs/report", help="folder for results.md and scaling.png")
    args = parser.parse_args(argv)
    from fourd.probe.report import write_report  # matplotlib (and torch) load after parsing: --help stays fast

    table, markdown, plot = write_report(args.results, args.out)
    print(table)
    print(f"\nwrote {markdown} and {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
