"""Semantic monocular depth for ROS 2: metric depth, semantic labels and point clouds from one camera."""

__version__ = "0.1.0"
