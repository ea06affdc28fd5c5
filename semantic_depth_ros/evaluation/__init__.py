"""KITTI Eigen depth metrics, semantic mIoU and evaluation reports."""
