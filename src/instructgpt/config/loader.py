"""Loading configs: YAML plus key=value overrides, validated with pydantic into one-line errors."""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from instructgpt.config.errors import UserError

C = TypeVar("C", bound="StrictConfig")
SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
CONFIG_ROOTS = (Path(__file__).resolve().parent.parent / "configs",      # installed wheel
                Path(__file__).resolve().parents[3] / "configs")         # source checkout


class StrictConfig(BaseModel):
    """Base of every config: unknown keys are errors, values are frozen after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def resolve_config_path(ref: str | Path) -> Path:
    """A path as given, or a bundled config name such as `run/demo` or `pretrain/tiny.yaml`."""
    path = Path(ref)
    if path.is_file():
        return path
    name = str(ref) if str(ref).endswith((".yaml", ".yml")) else f"{ref}.yaml"
    for root in CONFIG_ROOTS:
        if (root / name).is_file():
            return root / name
    raise UserError(f"{ref}: config file not found (give a YAML path or a bundled name like 'run/demo')")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["optim.lr=3e-4", "train.max_steps=10"]` -> nested dict; values parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"override '{item}': expected key=value, e.g. optim.lr=3e-4")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and SCIENTIFIC.fullmatch(value):  # YAML 1.1 reads "3e-4" as a string
            value = float(value)
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = value
    return nested


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Read `path` (YAML) into `cls`, apply `overrides`; errors name the file and the key."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        resolved = resolve_config_path(path)
        source = str(path)
        try:
            data = yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            problem = str(getattr(e, "problem", None) or e).strip().splitlines()[0]
            raise UserError(f"{source}{where}: invalid YAML ({problem})") from None
        except UnicodeDecodeError as e:
            raise UserError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except RecursionError:
            raise UserError(f"{source}: YAML nested too deeply") from None
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a mapping of keys at the top level")
    from_cli = parse_overrides(overrides or [])
    return validate_config(cls, deep_merge(data, from_cli), source, from_cli)


def validate_config(cls: type[C], data: dict[str, Any], source: str = "config",
                    from_cli: dict[str, Any] | None = None) -> C:
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        where = "the command line" if err["loc"] and _has_key(from_cli or {}, err["loc"]) else source
        if err["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(key, all_keys(cls), n=1, cutoff=0.5)
            fix = f" — did you mean '{hint[0]}'?" if hint else f" — valid keys: {', '.join(sorted(all_keys(cls)))}"
            raise UserError(f"unknown key '{key}' in {where}{fix}") from None
        got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
        raise UserError(f"{where}: key '{key}': {err['msg']}{got}") from None


def _has_key(tree: dict[str, Any], loc: tuple) -> bool:
    node: Any = tree
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def all_keys(cls: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key a config accepts, for suggestions."""
    keys = []
    for name, field in cls.model_fields.items():
        keys.append(prefix + name)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(all_keys(ann, f"{prefix}{name}."))
    return keys


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML, as saved in `run.yaml`."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
