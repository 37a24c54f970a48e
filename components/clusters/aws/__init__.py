"""AWS building blocks: network, EKS, Karpenter GPU capacity, model store, NLB controller, pod IAM."""
