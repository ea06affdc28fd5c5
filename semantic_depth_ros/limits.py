"""Size limits every input path checks before allocating (one source of truth for decoders and the estimator)."""

from __future__ import annotations

MAX_IMAGE_SIDE = 16384  # pixels: the largest accepted image height or width
