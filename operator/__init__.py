"""The Kubernetes operator: reconciles Functions and EventSourceMappings (not built yet)."""
