"""Configs: pydantic models for every command, YAML + key=value loading, one-line errors."""
from instructgpt.config.errors import UserError
from instructgpt.config.loader import StrictConfig, dump_config, load_config, validate_config
from instructgpt.config.schema import (PRESETS, ComparisonsConfig, DPOConfig, EvalConfig, EvalModel, ModelConfig, OptimConfig,
                                       PPOConfig, PretrainConfig, RewardConfig, RunConfig, ServeConfig, SFTConfig,
                                       TasksConfig, TokenizerConfig, TrainConfig, require)

__all__ = ["PRESETS", "ComparisonsConfig", "DPOConfig", "EvalConfig", "EvalModel", "PPOConfig", "RewardConfig", "ModelConfig", "OptimConfig", "PretrainConfig", "RunConfig", "ServeConfig", "SFTConfig", "StrictConfig",
           "TasksConfig", "TokenizerConfig", "TrainConfig", "UserError", "dump_config", "load_config",
           "require", "validate_config"]
