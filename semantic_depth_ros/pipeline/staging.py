"""Output tensors to the host: one device-to-host copy per output, one synchronisation per frame."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


class HostStaging:
    """Brings a frame's output tensors to the host: one device-to-host copy per output, one synchronisation.

    On CUDA each tensor is copied (non-blocking) into a pinned buffer kept per output name and shape, and the
    stream is synchronised once for all of them; on the CPU the tensors are returned as numpy views (no copy).
    The arrays stay valid until the next ``fetch`` (messages copy them into their own ``data``).
    """

    def __init__(self) -> None:
        self._pinned: dict[str, torch.Tensor] = {}

    def fetch(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """``{name: tensor}`` on any device -> ``{name: contiguous numpy array}`` on the host."""
        host: dict[str, torch.Tensor] = {}
        synchronise: list[torch.device] = []
        for name, tensor in tensors.items():
            tensor = tensor.detach()
            if tensor.device.type != "cuda":
                host[name] = tensor.contiguous()
                continue
            buffer = self._pinned.get(name)
            if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
                buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                self._pinned[name] = buffer
            buffer.copy_(tensor, non_blocking=True)
            host[name] = buffer
            if tensor.device not in synchronise:
                synchronise.append(tensor.device)
        for device in synchronise:
            torch.cuda.current_stream(device).synchronize()
        return {name: tensor.numpy() for name, tensor in host.items()}
