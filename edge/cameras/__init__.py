"""Cameras: frame sources, capture threads with a latest-frame slot, and the synthetic demo shelf."""
