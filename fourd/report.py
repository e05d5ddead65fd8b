"""`python -m fourd.report [--results FILE] [--out DIR]`: probe results as a markdown table and a scaling plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fourd.errors import ConfigError, cli
from fourd.files import check_output

REPORT_FILES = {"results.md", "scaling.png"}


def is_report(folder: Path) -> bool:
    """A folder that holds a report and nothing else (hidden temporaries aside): written again freely."""
    return all(p.name in REPORT_FILES or p.name.startswith(".") for p in folder.iterdir())


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fourd.report", description=__doc__)
    parser.add_argument("--results", default="outputs/probe_results.jsonl")
    parser.add_argument("--out", default="outputs/report", help="folder for results.md and scaling.png")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an output folder that holds other files (never the results file)",
    )
    args = parser.parse_args(argv)
    if Path(args.results).is_dir():
        raise ConfigError(f"--results {args.results} is a folder: name the .jsonl file the probes wrote")
    check_output(args.out, [args.results], args.overwrite, kind="folder", made_by=is_report)
    from fourd.probe.results import write_report  # matplotlib (and torch) load after parsing: --help stays fast

    table, markdown, plot = write_report(args.results, args.out)
    print(table)
    print(f"\nwrote {markdown} and {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
