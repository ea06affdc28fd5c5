"""Test images encoded by hand in every raw encoding camera drivers publish (the inverse of messages.decode_packed,
written from the encodings' definitions, not from the decoder), shared by the decoder and node tests."""

from __future__ import annotations

import numpy as np

CHANNEL = {"r": 0, "g": 1, "b": 2}
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Bayer mosaic of ``rgb`` in ROS ``pattern`` ("rggb": row 0 = R G R G..., row 1 = G B G B...)."""
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for index, colour in enumerate(pattern):
        row, col = divmod(index, 2)
        out[row::2, col::2] = rgb[row::2, col::2, CHANNEL[colour]]
    return out


def to_16(rgb8: np.ndarray) -> np.ndarray:
    """8-bit samples -> the 16-bit samples that scale back to them exactly (v * 257)."""
    return rgb8.astype(np.uint16) * 257


def grey(rgb: np.ndarray) -> np.ndarray:
    """HxW uint8 luma of ``rgb`` (BT.601 weights)."""
    return np.clip(np.rint(rgb.astype(np.float64) @ GREY_WEIGHTS), 0, 255).astype(np.uint8)


def yuv422(rgb: np.ndarray, order: str) -> np.ndarray:
    """HxWx3 RGB -> HxWx2 bytes of 4:2:2 YUV (BT.601 video range), packed in ``order`` ("uyvy" or "yuyv");
    chroma is the mean of each horizontal pixel pair."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    u_pair, v_pair = (0.5 * (c[:, 0::2] + c[:, 1::2]) for c in (u, v))
    planes = {"y0": y[:, 0::2], "y1": y[:, 1::2], "u": u_pair, "v": v_pair}
    names = ("u", "y0", "v", "y1") if order == "uyvy" else ("y0", "u", "y1", "v")
    packed = np.stack([planes[name] for name in names], axis=-1)  # H x W/2 x 4
    return np.clip(np.rint(packed), 0, 255).astype(np.uint8).reshape(rgb.shape[0], rgb.shape[1], 2)


def encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """``rgb`` (HxWx3 uint8) as the samples of ``encoding`` (HxW or HxWxC, uint8 or native uint16); mono
    encodings carry ``grey(rgb)``, alpha is 255."""
    wide = encoding.endswith("16")
    base = encoding[:-2] if wide else encoding[:-1] if encoding[-1] == "8" else encoding
    samples: np.ndarray
    if base.startswith("bayer_"):
        samples = mosaic(to_16(rgb) if wide else rgb, base[len("bayer_"):])
        return samples
    if encoding in ("yuv422", "yuv422_yuy2"):
        return yuv422(rgb, "uyvy" if encoding == "yuv422" else "yuyv")
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    planes = {"rgb": rgb, "bgr": rgb[..., ::-1], "rgba": np.concatenate((rgb, alpha), axis=2),
              "bgra": np.concatenate((rgb[..., ::-1], alpha), axis=2), "mono": grey(rgb)}
    samples = np.ascontiguousarray(planes[base])
    return to_16(samples) if wide else samples


def message_bytes(samples: np.ndarray, pad: int = 0, bigendian: bool = False) -> tuple[int, bytes]:
    """(step, data) of HxW[xC] ``samples`` with ``pad`` junk bytes per row, 16-bit samples in the given order."""
    height = samples.shape[0]
    if samples.dtype == np.uint16:
        samples = samples.astype(">u2" if bigendian else "<u2")
    rows = np.frombuffer(samples.tobytes(), np.uint8).reshape(height, -1)
    rows = np.concatenate((rows, np.full((height, pad), 0xA5, np.uint8)), axis=1)
    return rows.shape[1], rows.tobytes()
