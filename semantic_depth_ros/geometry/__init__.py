"""Camera geometry: intrinsics scaling, ray grids and back-projection (numpy/torch)."""
