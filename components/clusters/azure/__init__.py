"""Azure compositions pieces: the network, AKS, its GPU pool, the Blob model store and their identities."""
