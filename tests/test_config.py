"""Config validation: typed fields, one-line messages naming the bad key, YAML round trip, presets."""

from __future__ import annotations

import pytest

from vidfilter.config import Config, Polarity, preset_names
from vidfilter.errors import ConfigError


def test_defaults_follow_the_paper_where_measured():
    cfg = Config()
    assert cfg.model.resolved_width() == 48  # preset auto, no device known yet: the paper's network
    assert cfg.sampling.crop_size() == 256
    assert cfg.train.loss == "smooth_l1" and cfg.train.beta == 1.0
    assert cfg.train.resolved_lr() == pytest.approx(1.25e-4 * cfg.train.batch_size)
    paper = Config.from_yaml("worms_video")
    assert paper.train.resolved_lr() == pytest.approx(1e-4) and paper.train.batch_size == 36  # the paper's worms


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError) as e:
        Config.from_dict({"train": {"stesp": 10}})
    msg = str(e.value)
    assert "train.stesp" in msg and "steps" in msg and "\n" not in msg


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"sampling\.crop"):
        Config.from_dict({"sampling": {"crop": "big"}})


def test_lag_range_checked():
    with pytest.raises(ConfigError, match="lag"):
        Config.from_dict({"sampling": {"lag": [5, 2]}})
    assert Config.from_dict({"sampling": {"lag": 3, "lag_unit": "frames"}}).sampling.lag == (3, 3)
    with pytest.raises(ConfigError, match="lag_unit: frames"):
        Config.from_dict({"sampling": {"lag": 3}})  # the default unit is a fraction of the recording


def test_yaml_round_trip(tmp_path):
    cfg = Config().override({"train.steps": 7, "output.polarity": "dark", "sampling.lag": [1, 4], "sampling.lag_unit": "frames"})
    path = tmp_path / "c.yaml"
    cfg.to_yaml(path)
    back = Config.from_yaml(path)
    assert back == cfg and back.output.polarity == Polarity.dark


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml(bad)
    with pytest.raises(ConfigError, match="not found"):
        Config.from_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", preset_names())
def test_shipped_configs_validate(name):
    from pathlib import Path

    import vidfilter.config as c

    cfg = Config.from_yaml(Path(c.__file__).parent / "configs" / f"{name}.yaml")
    assert cfg.application


def test_newer_schema_refused():
    with pytest.raises(ConfigError, match="upgrade vidfilter"):
        Config.from_dict({"version": 99})
