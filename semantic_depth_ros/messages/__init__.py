"""The message core: every output message's fields computed once, without ROS (see ``fields`` and ``outputs``)."""

from .fields import (
    CLOUD_FIELDS,
    CLOUD_LAYOUT_FIELDS,
    IMAGE_ENCODINGS,
    CameraInfoFields,
    CloudFields,
    ImageFields,
    PointFieldSpec,
    RegionOfInterest,
    camera_info_fields,
    cloud_array,
    cloud_fields,
    image_array,
    image_fields,
)
from .outputs import (
    NEEDS,
    NEEDS_INTRINSICS,
    OUTPUT_ENCODINGS,
    OUTPUT_TOPICS,
    HostStaging,
    OutputFields,
    estimator_outputs_for,
    frame_fields,
    needs_for,
    output_tensors,
)

__all__ = [
    "CLOUD_FIELDS", "CLOUD_LAYOUT_FIELDS", "IMAGE_ENCODINGS", "CameraInfoFields", "CloudFields", "ImageFields",
    "PointFieldSpec",
    "RegionOfInterest", "camera_info_fields", "cloud_array", "cloud_fields", "image_array", "image_fields",
    "NEEDS", "NEEDS_INTRINSICS", "OUTPUT_ENCODINGS", "OUTPUT_TOPICS", "HostStaging", "OutputFields",
    "estimator_outputs_for", "frame_fields", "needs_for", "output_tensors",
]
