"""Every `python -m fourd...` command in a bash block of README.md and docs/*.md parses as printed: Hydra mains
compose their overrides (each value of a sweep once), argparse commands parse their arguments, all in-process.
The README's two commands are the ones CI and the docs promise, and every link between the pages resolves."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from fourd.conf import compose
from tests.helpers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OVERRIDES_OF = {"fourd.plan": "train", "fourd.probe.content": "probe"}  # commands that take Hydra overrides
MAIN_JOB = (
    "bash tools/setup_env.sh && .venv/bin/python -m fourd.train +exp=demo data=world hydra.run.dir=outputs/demo"
    " && .venv/bin/python -m fourd.probe -m probe=depth,points,boxes,pose"
    " backbone=trivial,pixels,random,outputs/demo/encoder.safetensors seed=0,1,2 && .venv/bin/python -m fourd.report"
)
TEST_COMMAND = "bash tools/setup_env.sh && .venv/bin/python -m pytest -q"


def bash_blocks(page: Path) -> list[str]:
    """The bash code blocks of a markdown page, continuation lines joined."""
    blocks = re.findall(r"^ *```bash\n(.*?)^ *```", page.read_text(), flags=re.S | re.M)
    return [block.replace("\\\n", " ") for block in blocks]


def fourd_commands(page: Path) -> list[tuple[str, list[str]]]:
    """(module, arguments) of every `-m fourd...` command in the page's bash blocks."""
    commands = []
    for block in bash_blocks(page):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            for segment in " ".join(shlex.quote(w) for w in words).split(" '&&' "):
                parts = shlex.split(segment)
                starts = [i for i, w in enumerate(parts[:-1]) if w == "-m" and parts[i + 1].startswith("fourd")]
                if starts:
                    commands.append((parts[starts[0] + 1], parts[starts[0] + 2 :]))
    return commands


COMMANDS = [(page.relative_to(REPO).as_posix(), *command) for page in PAGES for command in fourd_commands(page)]


def entry_module(module: str) -> str:
    """The module `python -m module` runs: a package's __main__."""
    return f"{module}.__main__" if importlib.util.find_spec(module).submodule_search_locations else module


def hydra_config_name(module: str) -> str | None:
    """The primary config of a Hydra main (`@hydra.main(..., config_name=...)`), None for other commands."""
    source = Path(importlib.util.find_spec(entry_module(module)).origin).read_text()
    found = re.search(r"@hydra\.main\([^)]*config_name=\"(\w+)\"", source)
    return found.group(1) if found else None


def each_sweep_value_once(overrides: list[str]) -> list[list[str]]:
    """Override lists that together use every value of every sweep (`key=a,b`) once, the others at their first."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    options = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override() else [o.input_line]
        for o in parsed
    ]
    runs = [[values[0] for values in options]]
    for i, values in enumerate(options):
        runs += [[*runs[0][:i], value, *runs[0][i + 1 :]] for value in values[1:]]
    return runs


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_every_link_to_a_file_or_heading_of_the_repository_resolves(page):
    for target in re.findall(r"\]\(([^)#]*)(?:#([^)]*))?\)", page.read_text()):
        path, anchor = target
        if path.startswith("http"):
            continue
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {path}"
        assert not anchor or anchor in anchors(linked), f"{page.name}: {path}#{anchor}"


class Parsed(BaseException):
    """Raised in place of running a command once its arguments parsed."""

    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


def stop_after_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("parse_args", "parse_intermixed_args"):
        parse = getattr(argparse.ArgumentParser, name)

        def parse_then_stop(self, *args, _parse=parse, **kwargs):
            raise Parsed(_parse(self, *args, **kwargs))

        monkeypatch.setattr(argparse.ArgumentParser, name, parse_then_stop)


def test_the_pages_print_commands_and_the_readme_its_two():
    readme = [" ".join(block.split()) for block in bash_blocks(REPO / "README.md")]
    assert MAIN_JOB in readme and TEST_COMMAND in readme
    assert (REPO / ".ci" / "run").read_text().splitlines()[-1] == TEST_COMMAND  # CI runs exactly the README's
    assert {module for _, module, _ in COMMANDS} >= {"fourd.train", "fourd.probe", "fourd.report", "fourd.convert"}


@pytest.mark.parametrize("page,module,args", COMMANDS, ids=[f"{page}:{module}" for page, module, _ in COMMANDS])
def test_every_printed_command_parses(page, module, args, monkeypatch):
    monkeypatch.chdir(REPO)  # the pages' commands run from the repository root, its conf/ included
    config_name = hydra_config_name(module)
    if config_name is not None:
        multirun = bool({"-m", "--multirun"} & set(args))
        overrides = [a for a in args if a not in ("-m", "--multirun")]
        runs = each_sweep_value_once(overrides)
        assert multirun or len(runs) == 1, f"{page}: a sweep without -m: {args}"
        for run in runs:
            compose(config_name, run, return_hydra_config=True)
        return
    stop_after_parsing(monkeypatch)
    command = importlib.import_module(entry_module(module))
    with pytest.raises(Parsed) as parsed:
        command.main(args)
    overrides = getattr(parsed.value.namespace, "overrides", None)
    if module == "fourd.probe.content":
        backbones, overrides = command.split_arguments(parsed.value.namespace.items)
        overrides = [f"backbone={backbones[0]}", *overrides]
    if module in OVERRIDES_OF and overrides is not None:
        compose(OVERRIDES_OF[module], overrides)
