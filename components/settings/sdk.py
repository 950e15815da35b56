"""The one adapter to the Pulumi SDK's configuration: the only module that reads it.

``load_settings()`` reads the stack's whole configuration once and hands it to
``parse_settings``; everything else in the program receives the resulting ``StackSettings``.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.settings.model import StackSettings
from components.settings.parse import parse_settings


def raw_config_from_pulumi() -> dict[str, str]:
    """Every configuration value the engine gave this program, keyed ``namespace:key``."""
    # pulumi.Config reads one key at a time; to find unknown keys (typos) the whole map is
    # needed, which the SDK keeps in pulumi.runtime.config.
    values: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def load_settings() -> StackSettings:
    """Read and validate the current stack's configuration (raises SettingsError)."""
    return parse_settings(pulumi.get_stack(), raw_config_from_pulumi())
