"""Configs: every bundled YAML loads; typos and wrong types fail naming the file and key."""
from pathlib import Path

import pytest

from instructgpt.config import (PRESETS, ComparisonsConfig, DPOConfig, PPOConfig, PretrainConfig, RewardConfig,
                                RunConfig, SFTConfig, TasksConfig, TokenizerConfig, UserError, dump_config,
                                load_config)
from instructgpt.config.loader import parse_overrides

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"run": RunConfig, "pretrain": PretrainConfig, "tokenizer": TokenizerConfig, "tasks": TasksConfig,
           "sft": SFTConfig, "comparisons": ComparisonsConfig, "reward": RewardConfig, "ppo": PPOConfig,
           "dpo": DPOConfig}


def test_every_bundled_yaml_loads():
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        cls = CLASSES[f.parent.name]
        cfg = load_config(cls, f)
        assert isinstance(cfg, cls), f


def test_typo_suggests_nearest_key(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(UserError) as e:
        load_config(PretrainConfig, f)
    assert str(e.value) == f"unknown key 'optim.lrr' in {f} — did you mean 'optim.lr'?"


def test_typo_on_command_line_names_the_command_line():
    with pytest.raises(UserError, match="unknown key 'train.max_step' in the command line — did you mean 'train.max_steps'"):
        load_config(PretrainConfig, None, ["train.max_step=3"])


def test_wrong_type_names_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  batch_size: lots\n")
    with pytest.raises(UserError, match=r"key 'train.batch_size'.*'lots'"):
        load_config(PretrainConfig, f)


def test_unknown_preset_names_key():
    with pytest.raises(UserError, match=r"model.preset.*'huge'"):
        load_config(PretrainConfig, None, ["model.preset=huge"])


def test_overrides_are_typed_and_nested():
    assert parse_overrides(["optim.lr=3e-4", "train.max_steps=10", "name=x"]) == {
        "optim": {"lr": 3e-4}, "train": {"max_steps": 10}, "name": "x"}
    cfg = load_config(RunConfig, "run/demo", ["pretrain.train.max_steps=7"])
    assert cfg.pretrain.train.max_steps == 7
    assert cfg.pretrain.model.preset == "tiny"  # the YAML's value survives a sibling override


def test_configs_are_frozen_and_dump_round_trips(tmp_path):
    cfg = load_config(RunConfig, "run/demo")
    with pytest.raises(Exception):
        cfg.name = "other"
    f = tmp_path / "run.yaml"
    f.write_text(dump_config(cfg))
    assert load_config(RunConfig, f) == cfg


def test_presets_agree_with_models():
    from instructgpt.models.presets import PRESETS as SIZES
    assert tuple(SIZES) == PRESETS
