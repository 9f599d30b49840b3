"""Build and CI tools that are neither the app nor its local stack."""
