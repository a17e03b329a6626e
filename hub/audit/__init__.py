"""The audit log: an append-only Merkle tree with signed checkpoints, verifiable offline."""
