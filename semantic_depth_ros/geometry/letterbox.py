"""Where an image goes inside the network input: one aspect-preserving resize, centred, edge-replicated padding.

The image is resized by one factor so that it fits inside the network input, then padded to the network size by
replicating its edge pixels (a replicated border looks like more of the scene to the network, unlike black bars).
The estimator's pre- and post-processing (``inference.preprocess``), its canonical depth scale and the undistorting
resampler (``inference.undistortion``) all place the image with the same :class:`Letterbox`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError


@dataclass(frozen=True)
class Letterbox:
    """Placement of an ``image_height`` x ``image_width`` image inside the ``network_height`` x ``network_width`` input.

    The image is resized to ``resized_height`` x ``resized_width`` and pasted with its top-left pixel at
    (``top``, ``left``); the rest of the network input is edge-replicated padding. Sizes in pixels.
    """

    image_height: int
    image_width: int
    network_height: int
    network_width: int
    resized_height: int
    resized_width: int
    top: int
    left: int

    @property
    def bottom(self) -> int:
        """Padding rows below the resized image."""
        return self.network_height - self.top - self.resized_height

    @property
    def right(self) -> int:
        """Padding columns right of the resized image."""
        return self.network_width - self.left - self.resized_width

    @property
    def needs_resize(self) -> bool:
        """Whether the image size differs from the resized size."""
        return (self.resized_height, self.resized_width) != (self.image_height, self.image_width)

    @property
    def downscales(self) -> bool:
        """Whether either axis shrinks (then the resize needs anti-aliasing)."""
        return self.resized_height < self.image_height or self.resized_width < self.image_width


def letterbox(image_height: int, image_width: int, network_height: int, network_width: int) -> Letterbox:
    """Largest aspect-preserving resize of the image that fits the network input, centred.

    The one scale factor is ``min(network_height / image_height, network_width / image_width)``; each resized side is
    that times the image side, rounded to whole pixels (so the per-axis factors may differ by under half a pixel).
    """
    if image_height < 1 or image_width < 1:
        raise InvalidInputError(f"image size {image_width}x{image_height} must be at least 1x1")
    scale = min(network_height / image_height, network_width / image_width)
    resized_height = min(network_height, max(1, round(image_height * scale)))
    resized_width = min(network_width, max(1, round(image_width * scale)))
    return Letterbox(
        image_height=image_height,
        image_width=image_width,
        network_height=network_height,
        network_width=network_width,
        resized_height=resized_height,
        resized_width=resized_width,
        top=(network_height - resized_height) // 2,
        left=(network_width - resized_width) // 2,
    )
