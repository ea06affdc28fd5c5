"""ROS 2 adapters: the only place that imports rclpy and message types."""
