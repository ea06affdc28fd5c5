"""Offline replay of recorded drives: ``semantic-depth infer-bag`` (read a bag, run the estimator, write a bag).

``topics`` names the output topics, ``frames`` reads and decodes the input frames, ``bag_writer`` wraps the
message core's fields into ``rosbags`` messages and writes the output bag atomically, ``scoring`` measures the
depth against the drive's LiDAR, ``pipeline`` reads, infers (each frame through the image topic's
``pipeline.CameraOutputs``, the node's frame path) and writes on overlapping threads; ``run`` is one whole
infer-bag run as data (what ``infer-bag`` and each ``fleet`` task execute). ROS-free throughout.
"""
