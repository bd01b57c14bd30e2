"""Kafka and Redis event-source pollers (not built yet)."""
