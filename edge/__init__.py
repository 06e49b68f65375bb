"""Shelfwatch edge agent: cameras, dataset store, web studio, inference runtime, MQTT. Never imports torch."""

__version__ = "0.1.0"
