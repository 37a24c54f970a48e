"""Deployment assets: the kind cluster, the GitOps example, and the CI trust bootstrap (deploy/bootstrap)."""
