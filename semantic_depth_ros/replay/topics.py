"""Output topic names of a replay: the live node's topic names under the input image topic's namespace."""

from __future__ import annotations

from ..errors import ConfigError
from ..messages import OUTPUT_TOPICS

IMAGE_LEAVES = ("compressed",)  # transport suffixes of image_transport topics (``/cam/image_raw/compressed``)
DEFAULT_OUTPUTS = ("depth", "points")
# always written beside these outputs: the intrinsics of the depth image, with the same stamp
WITH_DEPTH_INFO = ("depth", "points")


def image_namespace(image_topic: str) -> str:
    """``/cam/image_raw`` -> ``/cam``; ``/cam/image_raw/compressed`` -> ``/cam``; ``/image`` -> ``""``."""
    parts = [part for part in image_topic.split("/") if part]
    if len(parts) > 1 and parts[-1] in IMAGE_LEAVES:
        parts = parts[:-1]
    return "/" + "/".join(parts[:-1]) if len(parts) > 1 else ""


def output_topic(namespace: str, key: str) -> str:
    """The topic of output ``key`` (``OUTPUT_TOPICS``) under ``namespace``: ``/cam`` + ``depth`` -> ``/cam/depth``."""
    return f"{namespace}/{OUTPUT_TOPICS[key]}"


def default_camera_info_topic(image_topic: str) -> str:
    """``camera_info`` beside the image: ``/cam/image_raw`` -> ``/cam/camera_info``."""
    return f"{image_namespace(image_topic)}/camera_info"


def parse_outputs(text: str) -> tuple[str, ...]:
    """``depth,points,...`` -> output keys in ``OUTPUT_TOPICS`` order, ``depth_info`` added beside depth and points.

    ConfigError naming an unknown key or an empty list.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--outputs {text!r} names no output; choose from {', '.join(OUTPUT_TOPICS)}")
    unknown = [name for name in names if name not in OUTPUT_TOPICS]
    if unknown:
        raise ConfigError(f"--outputs: unknown output {unknown[0]!r}; choose from {', '.join(OUTPUT_TOPICS)}")
    wanted = set(names)
    if wanted & set(WITH_DEPTH_INFO):
        wanted.add("depth_info")
    return tuple(key for key in OUTPUT_TOPICS if key in wanted)
