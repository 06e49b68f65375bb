"""Configuration: the device's pydantic model tree and the YAML loader shared with the trainer."""

from edge.config.loader import dump_yaml_config, load_yaml_config, parse_yaml_config
from edge.config.model import (
    CameraConfig,
    DatasetRulesConfig,
    EdgeConfig,
    EventsConfig,
    InboxConfig,
    ModelConfig,
    MqttConfig,
    TlsConfig,
    TrainerClientConfig,
    WebConfig,
    ZoneConfig,
)
from edge.config.secrets import Secret, resolve_secret

__all__ = [
    "CameraConfig",
    "DatasetRulesConfig",
    "EdgeConfig",
    "EventsConfig",
    "InboxConfig",
    "ModelConfig",
    "MqttConfig",
    "Secret",
    "TlsConfig",
    "TrainerClientConfig",
    "WebConfig",
    "ZoneConfig",
    "dump_yaml_config",
    "load_yaml_config",
    "parse_yaml_config",
    "resolve_secret",
]
