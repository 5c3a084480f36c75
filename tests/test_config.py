"""Typed configs as flags and JSON: hidden aliases for old spellings, nested configs flattened into flags."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from shared.config import add_config_args, config_from_args, from_dict, load_config, save_config, to_dict
from shared.errors import UserError


@dataclass
class Inner:
    latent_dim: int = 2
    widths: tuple[int, ...] = (32, 64)
    recon: Literal["bce", "mse"] = "bce"
    center: bool = True


@dataclass
class Outer:
    steps_per_eval: int = 10
    model: Inner = field(default_factory=lambda: Inner(latent_dim=4))
    source: str = "digits"


@dataclass
class Clash:
    latent_dim: int = 3
    model: Inner = field(default_factory=Inner)


def parse(cls, argv, **kw):
    p = argparse.ArgumentParser()
    add_config_args(p, cls, **kw)
    return p, p.parse_args(argv)


def test_hidden_alias_writes_the_same_field_and_stays_out_of_help():
    p, ns = parse(Inner, ["--model-latent-dim", "7", "--no-model-center", "--widths", "8"], hidden_alias_prefix="model_")
    cfg = config_from_args(Inner, ns)
    assert (cfg.latent_dim, cfg.center, cfg.widths) == (7, False, (8,))
    assert config_from_args(Inner, parse(Inner, ["--latent-dim", "5"], hidden_alias_prefix="model_")[1]).latent_dim == 5
    text = p.format_help()
    assert "--latent-dim" in text and "--model-latent-dim" not in text and "--model-center" not in text
    with pytest.raises(SystemExit):  # without the alias the old spelling is unknown
        parse(Inner, ["--model-latent-dim", "7"])


def test_hidden_alias_keeps_a_prefix_apart():
    _, ns = parse(Inner, ["--m-latent-dim", "6"], prefix="m_", hidden_alias_prefix="model_")
    assert ns.m_latent_dim == 6
    _, ns = parse(Inner, ["--model-latent-dim", "9"], prefix="m_", hidden_alias_prefix="model_")
    assert config_from_args(Inner, ns, prefix="m_").latent_dim == 9


def test_nested_config_is_flat_flags_and_rebuilt_over_base():
    p, ns = parse(Outer, ["--latent-dim", "8", "--recon", "mse"])
    help_text = p.format_help()
    assert "--latent-dim" in help_text and "--model" not in help_text.replace("--model-", "")
    assert "(default: 4)" in help_text  # the outer default's nested value, not Inner's own
    cfg = config_from_args(Outer, ns)
    assert cfg == Outer(model=Inner(latent_dim=8, recon="mse"))
    base = Outer(steps_per_eval=3, model=Inner(latent_dim=5, widths=(16,)))
    cfg = config_from_args(Outer, parse(Outer, ["--recon", "mse"])[1], base=base)
    assert cfg == Outer(steps_per_eval=3, model=Inner(latent_dim=5, widths=(16,), recon="mse"))
    assert config_from_args(Outer, parse(Outer, [])[1]) == Outer()


def test_nested_flags_take_skip_and_defaults_by_flat_name():
    p, ns = parse(Outer, [], skip=("widths",), defaults={"latent_dim": 12})
    assert "--widths" not in p.format_help() and "(default: 12)" in p.format_help()


def test_clashing_names_are_refused_when_the_parser_is_built():
    with pytest.raises(ValueError, match="latent_dim"):
        add_config_args(argparse.ArgumentParser(), Clash)
    with pytest.raises(ValueError, match="latent_dim"):
        from_dict(Clash, {})


def test_nested_json_round_trip_and_flat_files_of_older_runs(tmp_path):
    cfg = Outer(steps_per_eval=2, model=Inner(latent_dim=6, widths=(8, 16), recon="mse"))
    save_config(cfg, tmp_path / "c.json")
    written = json.loads((tmp_path / "c.json").read_text())
    assert written["model"] == {"latent_dim": 6, "widths": [8, 16], "recon": "mse", "center": True}
    assert load_config(Outer, tmp_path / "c.json") == cfg
    assert from_dict(Outer, to_dict(cfg)) == cfg
    # the flat layout written before the nesting: the model's fields at the top level
    (tmp_path / "old.json").write_text(json.dumps({"steps_per_eval": 2, "latent_dim": 6, "widths": [8, 16], "recon": "mse", "source": "mnist"}))
    assert load_config(Outer, tmp_path / "old.json") == Outer(steps_per_eval=2, model=Inner(latent_dim=6, widths=(8, 16), recon="mse"), source="mnist")
    # a partial nested dict keeps the outer default's other values
    assert from_dict(Outer, {"model": {"recon": "mse"}}).model == Inner(latent_dim=4, recon="mse")


def test_nested_values_are_checked_and_unknown_keys_named():
    with pytest.raises(UserError, match="recon"):
        from_dict(Outer, {"model": {"recon": "l1"}})
    with pytest.raises(UserError, match="recon"):
        from_dict(Outer, {"recon": "l1"})
    with pytest.raises(UserError, match="colour"):
        from_dict(Outer, {"colour": 1})
    with pytest.raises(UserError, match="colour"):
        from_dict(Outer, {"model": {"colour": 1}})
    with pytest.raises(UserError, match="JSON object"):
        from_dict(Outer, {"model": 3})


@dataclass
class Derives:
    latent_dim: float = 0.5  # the outer meaning of a name its model also has
    model: Inner = field(default_factory=Inner, metadata={"derived": ("latent_dim",), "helps": {"widths": "widths of this use"}})


def test_derived_fields_get_no_flag_are_not_written_and_may_share_a_name():
    p, ns = parse(Derives, ["--latent-dim", "0.25", "--widths", "4"])
    assert "widths of this use" in p.format_help()
    cfg = config_from_args(Derives, ns, base=Derives(model=Inner(latent_dim=9)))
    assert cfg.latent_dim == 0.25 and cfg.model == Inner(latent_dim=9, widths=(4,))  # the derived field keeps its value
    assert "latent_dim" not in to_dict(cfg)["model"] and to_dict(cfg)["latent_dim"] == 0.25
    assert from_dict(Derives, to_dict(cfg)) == Derives(latent_dim=0.25, model=Inner(widths=(4,)))
    assert from_dict(Derives, {"latent_dim": 0.1, "recon": "mse"}) == Derives(latent_dim=0.1, model=Inner(recon="mse"))
