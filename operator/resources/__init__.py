"""Pure builders: a manifest and the operator's config in, the desired Kubernetes objects out."""
