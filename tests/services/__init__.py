"""Real Redis, Kafka and Kubernetes for kfaas's tests and demos, run as local processes.

`scripts/services` (the command line in `cli.py`) and the pytest fixtures in `fixtures.py` share
this code, so what a developer starts by hand is exactly what the suite tests against. Each
service keeps its pid files, ports, logs and data in a state directory (see `base.py`); builds are
cached under `~/.cache/kfaas/`, keyed by version. docs/testing.md says how to use them.
"""
