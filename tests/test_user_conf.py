"""The user's own configs: a `conf/` in the working directory (or FOURD_CONF) is searched before fourd's packaged
configs, by `fourd.conf.compose` and by the Hydra mains alike."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra.errors import MissingConfigException

from fourd.conf import compose
from tests.helpers import REPO

MINE = "# @package _global_\ndefaults:\n  - /exp/demo\n  - _self_\nname: mine\nmodel:\n  depth: 3\n"
MYDATA = "defaults:\n  - scannet\n  - _self_\nname: mydata\ntrain:\n  root: /my/train\ntest:\n  root: /my/test\n"


@pytest.fixture
def user_conf(tmp_path, monkeypatch):
    """A project folder whose conf/ holds an experiment and probe data of its own; the working directory."""
    (tmp_path / "conf" / "exp").mkdir(parents=True)
    (tmp_path / "conf" / "probe_data").mkdir()
    (tmp_path / "conf" / "exp" / "mine.yaml").write_text(MINE)
    (tmp_path / "conf" / "probe_data" / "mydata.yaml").write_text(MYDATA)
    monkeypatch.delenv("FOURD_CONF", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "conf"


def test_the_working_directorys_conf_adds_an_experiment_and_probe_data(user_conf):
    train = compose("train", ["+exp=mine"])
    assert (train.name, train.model.depth, train.trainer.max_steps) == ("mine", 3, 1000)  # the rest is the demo's
    probe = compose("probe", ["probe_data=mydata"])
    assert probe.probe_data.name == "mydata" and probe.probe_data.train.root == "/my/train"
    assert probe.probe_data.train._target_.endswith("ScanNetDataset")


def test_a_user_config_is_found_before_the_packaged_one_of_the_same_name(user_conf):
    (user_conf / "exp" / "demo.yaml").write_text("# @package _global_\nname: shadow\n")
    assert compose("train", ["+exp=demo"]).name == "shadow"


def test_fourd_conf_points_to_a_conf_folder_elsewhere(user_conf, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    with pytest.raises(MissingConfigException):
        compose("train", ["+exp=mine"])
    monkeypatch.setenv("FOURD_CONF", str(user_conf))
    assert compose("train", ["+exp=mine"]).name == "mine"


def test_a_fourd_conf_that_is_not_a_folder_is_warned_about(tmp_path, monkeypatch):
    monkeypatch.setenv("FOURD_CONF", str(tmp_path / "missing"))
    with pytest.warns(UserWarning, match="FOURD_CONF=.*missing is not a folder"):
        assert compose("train", ["+exp=demo"]).name == "demo"


def test_without_a_conf_folder_the_packaged_configs_compose(tmp_path, monkeypatch):
    monkeypatch.delenv("FOURD_CONF", raising=False)
    monkeypatch.chdir(tmp_path)
    assert compose("train", ["+exp=demo"]).name == "demo"
    assert compose("probe", ["probe_data=scannet"]).probe_data.name == "scannet"


def test_the_repositorys_examples_compose(monkeypatch):
    monkeypatch.setenv("FOURD_CONF", str(REPO / "conf"))
    assert compose("train", ["+exp=my_demo"]).name == "my_demo"
    assert compose("probe", ["probe_data=my_scannet"]).probe_data.train.root == "/data/scannet/train"


def test_the_hydra_main_searches_the_users_conf(user_conf):
    proc = subprocess.run(
        [sys.executable, "-m", "fourd.train", "+exp=mine", "--cfg", "job"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "\nname: mine\n" in proc.stdout
