"""Cluster flavours: the cloud infrastructure a stack creates before the workload (AWS, GCP)."""
