"""A plain setting that cannot work is refused before anything is built, by its key."""

import pytest

from fourd.errors import ConfigError
from fourd.train.settings import check_settings
from tests.helpers.configs import composed


@pytest.mark.parametrize(
    "override,message",
    [
        ("trainer.max_steps=abc", "trainer.max_steps='abc' must be a whole number >= -1"),
        ("data.batch_size=-4", "data.batch_size=-4 must be a whole number >= 1"),
        ("data.batch_size=2.5", "data.batch_size=2.5 must be a whole number >= 1"),
        ("checkpoint.keep_last=-1", "checkpoint.keep_last=-1 must be a whole number >= 0"),
        ("trainer.devices=-3", "trainer.devices=-3 must be auto, -1 (all), a count >= 1 or a list"),
        ("trainer.devices=[]", "trainer.devices=[] must be auto"),
        ("trainer.devices=true", "trainer.devices=True must be auto"),
        ("trainer.max_steps=0", "trainer.max_steps=0 trains nothing"),
        ("data.prefetch_factor=0", "data.prefetch_factor=0 must be a whole number >= 1"),
        ("compile=banana", "compile='banana' must be true or false"),
        ("strategy.activation_checkpointing=1", "strategy.activation_checkpointing=1 must be true or false"),
    ],
)
def test_bad_settings_are_named(override, message):
    with pytest.raises(ConfigError) as error:
        check_settings(composed("train", "+exp=demo", override))
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("override", ["trainer.max_steps=-1", "trainer.devices=2", "trainer.devices=[0,1]"])
def test_good_settings_pass(override):
    check_settings(composed("train", "+exp=demo", override))
