"""GCP building blocks: network, GKE, GPU node pools, model store, Workload Identity, L4 load balancer."""
