"""A consumer of the venue-gateway MQTT protocol, version 2 (docs/protocol.md)."""
