"""Two-phase conditional-flow training."""
