"""Typed, validated stack settings: the only reader of Pulumi configuration.

``load_settings()`` (``sdk``) reads the stack's configuration once; ``parse_settings()``
(``parse``, with the sections in ``parse_aws`` and ``parse_cluster``) validates every value and
returns the frozen ``StackSettings`` tree (``model``), or raises one ``SettingsError`` naming
every problem (``reader``). ``keys`` declares the keys, and the value rules live in ``parsers``,
``rules`` and ``windows``; ``subnets`` plans the VPC's subnets. This module re-exports what the
rest of the program imports.
"""

from components.settings.keys import (
    ALLOWED_FOREIGN_KEYS,
    KEYS,
    KEYS_BY_NAME,
    PROJECT,
    STACK_NAME,
    STACK_NAME_RULE,
    KeySpec,
)
from components.settings.model import (
    CLUSTER_ADDONS,
    IMAGES,
    JOBS_AT_ONCE,
    PROJECT_ROOT,
    ROLLOUT_SURGE_PERCENT,
    AccountSettings,
    AlertingSettings,
    CacheEngine,
    CacheSettings,
    ClusterSettings,
    DatabaseSettings,
    DeploySettings,
    EdgeSettings,
    FlowLogTrafficType,
    ImageSettings,
    ImagesSettings,
    LogLevel,
    MaintenanceSettings,
    NatGatewayMode,
    NetworkSettings,
    NodeGroupSettings,
    QuotaSettings,
    RateLimit,
    Resources,
    Secret,
    StackRole,
    StackSettings,
    StorageSettings,
    WorkloadSettings,
)
from components.settings.parse import parse_settings
from components.settings.reader import SettingsError, SettingsProblem
from components.settings.sdk import load_settings, raw_config_from_pulumi

__all__ = [
    "ALLOWED_FOREIGN_KEYS",
    "CLUSTER_ADDONS",
    "IMAGES",
    "JOBS_AT_ONCE",
    "KEYS",
    "KEYS_BY_NAME",
    "PROJECT",
    "PROJECT_ROOT",
    "ROLLOUT_SURGE_PERCENT",
    "STACK_NAME",
    "STACK_NAME_RULE",
    "AccountSettings",
    "AlertingSettings",
    "CacheEngine",
    "CacheSettings",
    "ClusterSettings",
    "DatabaseSettings",
    "DeploySettings",
    "EdgeSettings",
    "FlowLogTrafficType",
    "ImageSettings",
    "ImagesSettings",
    "KeySpec",
    "LogLevel",
    "MaintenanceSettings",
    "NatGatewayMode",
    "NetworkSettings",
    "NodeGroupSettings",
    "QuotaSettings",
    "RateLimit",
    "Resources",
    "Secret",
    "SettingsError",
    "SettingsProblem",
    "StackRole",
    "StackSettings",
    "StorageSettings",
    "WorkloadSettings",
    "load_settings",
    "parse_settings",
    "raw_config_from_pulumi",
]
