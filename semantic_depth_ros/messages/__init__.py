"""The message core without ROS: every output message's fields computed once (``fields``, ``outputs``), their
CDR bytes (``cdr``), and the input images decoded from image messages (``decode``)."""

from .cdr import MessageHeader, to_cdr
from .decode import compressed_to_rgb, decode_compressed_image, decode_raw_image, image_to_rgb
from .fields import (
    CLOUD_FIELDS,
    CLOUD_LAYOUT_FIELDS,
    IMAGE_ENCODINGS,
    CameraInfoFields,
    CloudFields,
    ImageFields,
    OutputFields,
    PointFieldSpec,
    RegionOfInterest,
    camera_info_fields,
    cloud_array,
    cloud_fields,
    image_array,
    image_fields,
)
from .outputs import NEEDS_INTRINSICS, OUTPUT_ENCODINGS, OUTPUT_TOPICS, frame_fields

__all__ = [
    "MessageHeader", "to_cdr",
    "compressed_to_rgb", "decode_compressed_image", "decode_raw_image", "image_to_rgb",
    "CLOUD_FIELDS", "CLOUD_LAYOUT_FIELDS", "IMAGE_ENCODINGS", "CameraInfoFields", "CloudFields", "ImageFields",
    "PointFieldSpec", "RegionOfInterest", "camera_info_fields", "cloud_array", "cloud_fields", "image_array",
    "image_fields",
    "NEEDS_INTRINSICS", "OUTPUT_ENCODINGS", "OUTPUT_TOPICS", "OutputFields", "frame_fields",
]
