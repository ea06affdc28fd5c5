"""Run-time estimation: image in, metric depth, semantic labels and confidence out."""
