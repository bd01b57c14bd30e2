"""Stream tests: pollers against the real Kafka and Redis (helpers in `streams.kit`)."""
