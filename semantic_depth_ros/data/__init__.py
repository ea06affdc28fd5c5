"""Dataset readers, rosbag extraction and generated street scenes."""
