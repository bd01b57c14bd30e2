"""kfaas: AWS-Lambda-style functions on a Kubernetes cluster you own.

The core package holds what every component shares: manifest models and validation, event shapes,
configuration, telemetry and the command line. Components live in subpackages mapped from their own
top-level folders (``runtime/`` is ``kfaas.runtime``, and so on).
"""

from __future__ import annotations

__version__ = "0.1.0"
