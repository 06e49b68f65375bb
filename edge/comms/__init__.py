"""Messaging: the Communicator interface, the MQTT implementation, its durable outbox, Home Assistant discovery."""
