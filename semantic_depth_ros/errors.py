"""The package's own exception types.

Every user-facing failure is one of these, with a one-line message that names the offending value, field
or path. Command-line entry points turn them into ``error: <message>`` and exit code 1.
"""


class SemanticDepthError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SemanticDepthError):
    """A configuration file, preset or parameter value is invalid."""


class CheckpointError(SemanticDepthError):
    """A checkpoint is missing, corrupt or incompatible with this code."""


class InvalidInputError(SemanticDepthError):
    """An image, camera model or message cannot be used (bad encoding, size, intrinsics...)."""


class DatasetError(SemanticDepthError):
    """A dataset folder or file is missing or malformed."""


class ExtractionError(SemanticDepthError):
    """A rosbag cannot be extracted (missing topic, transform, bad message...)."""
