"""Kafka and Redis event-source pollers: `kfaas poller`, and the pollers `kfaas dev` runs.

`runner` wires a mapping into consumers (`kafka_poller`, `redis_poller`) that share one delivery
loop (`delivery`) and Lambda's rules as pure functions (`batches`, `filters`, `records`); only the
`*_clients` modules talk to Kafka and Redis. See docs/decisions/006-stream-pollers.md.
"""
