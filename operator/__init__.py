"""The Kubernetes operator: `kfaas operator` reconciles Functions and EventSourceMappings.

Pure builders live in `resources/`, the ordered reconcile steps in `reconcile`, the Kopf wiring in
`handlers`, and the autoscaler applies `kfaas.scaling` to the demand gateways report (ADR 007, 008).
"""
