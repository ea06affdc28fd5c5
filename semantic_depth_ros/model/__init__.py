"""Networks, depth bins and checkpoints (pure torch)."""
