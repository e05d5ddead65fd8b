"""User errors end in one `error:` line and exit 1; bugs keep their traceback; FOURD_TRACEBACK=1 shows it."""

import os
import subprocess
import sys

import pytest
from hydra.errors import InstantiationException

from fourd.errors import ConfigError, FourdError, reported, user_error
from tests.helpers import REPO


def test_a_user_error_becomes_one_line_and_exit_1(capsys, monkeypatch):
    monkeypatch.delenv("FOURD_TRACEBACK", raising=False)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info, reported():
        raise ConfigError("model: depth=0\nmore detail nobody needs")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: model: depth=0\n"


def test_a_bug_keeps_its_traceback_and_the_flag_shows_user_errors_too(monkeypatch):
    with pytest.raises(RuntimeError), reported():
        raise RuntimeError("a bug, not the user's input")
    monkeypatch.setenv("FOURD_TRACEBACK", "1")
    with pytest.raises(FourdError), reported():
        raise FourdError("shown with its traceback")


def test_the_error_inside_hydra_instantiate_is_the_one_reported():
    try:
        raise InstantiationException("Error in call to target 'x'") from FileNotFoundError("no such source: /x")
    except InstantiationException as wrapped:
        assert str(user_error(wrapped)) == "no such source: /x"
    assert user_error(InstantiationException("a bug in a target")) is None


@pytest.mark.parametrize("refusal", [ValueError("no videos found in /x"), TypeError("unexpected keyword 'fps'")])
def test_a_value_a_constructor_refuses_is_named_by_its_config_node(refusal):
    """Hydra's wrapper (target, repr of the cause, full_key) becomes one line: the node, then the refusal."""
    message = f"Error in call to target 'x':\n{refusal!r}\nfull_key: data.dataset"
    try:
        raise InstantiationException(message) from refusal
    except InstantiationException as wrapped:
        cause = user_error(wrapped)
    assert isinstance(cause, ConfigError) and str(cause) == f"data.dataset: {refusal}"
    try:
        raise InstantiationException(message) from RuntimeError("a bug in a target")
    except InstantiationException as wrapped:
        assert user_error(wrapped) is None


def run_train(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FOURD_TRACEBACK", "HYDRA_FULL_ERROR")}
    cmd = [sys.executable, "-m", "fourd.train", "+exp=demo", "dry_run=true", f"hydra.run.dir={tmp_path}", *overrides]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.depth=0", "error: model: encoder sizes must be positive whole numbers, got depth=0"),
        ("trainer.max_steps=abc", "error: trainer.max_steps='abc' must be a whole number >= -1"),
        ("model.patch_size=[2,8]", "error: model: patch_size [2, 8] must be 3 numbers: frames, height, width"),
        ("+trainer.no_such_key=1", "error: trainer: Trainer.__init__() got an unexpected keyword argument"),
    ],
)
def test_train_names_a_bad_setting_in_one_line(tmp_path, override, message):
    proc = run_train(tmp_path, override)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_first_few_names_at_most_the_limit_and_says_when_it_left_some_out():
    from fourd.errors import first_few

    assert first_few(["a", "b"], 2) == "a, b"
    assert first_few(["a", "b", "c"], 2) == "a, b, ..."
    assert first_few(["x: bad", "y: bad", "z: bad"], 1, "; ") == "x: bad; ..."
