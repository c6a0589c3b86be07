"""TensorRT: a built engine as a session (inputs copied to the first CUDA device, outputs back).

Only where ``tensorrt`` imports and a CUDA GPU is visible; the engine file is ultralytics' layout
(a length-prefixed JSON metadata header before the serialized engine), so its validator reads it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgeslim.runtime.ports import IOSpec


class TensorRtSession:
    def __init__(self, path: Path) -> None:
        import tensorrt as trt
        from ultralytics.nn.backends.base import BaseBackend

        import edgeslim.ultra  # noqa: F401  (offline ultralytics settings before its import)

        offset, _ = BaseBackend.engine_header(path)  # skip the metadata header ultralytics' loader reads
        self._engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(Path(path).read_bytes()[offset:])
        self._context = self._engine.create_execution_context()
        self._buffers: dict[str, torch.Tensor] = {}  # keeps the device tensors alive while the context points at them
        self._inputs: list[IOSpec] = []
        self._outputs: list[IOSpec] = []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            shape = list(self._context.get_tensor_shape(name))
            dtype = trt.nptype(self._engine.get_tensor_dtype(name))
            self._buffers[name] = torch.from_numpy(np.empty(shape, dtype)).cuda()
            self._context.set_tensor_address(name, self._buffers[name].data_ptr())
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(IOSpec(name, shape))
        self._stream = torch.cuda.current_stream()

    def get_inputs(self) -> list[IOSpec]:
        return self._inputs

    def get_outputs(self) -> list[IOSpec]:
        return self._outputs

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[Any]:
        for name, value in feeds.items():
            self._buffers[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))
        self._context.execute_async_v3(self._stream.cuda_stream)
        self._stream.synchronize()
        names = list(output_names or [o.name for o in self._outputs])
        return [self._buffers[n].cpu().numpy() for n in names]


def open_session(path: Path) -> TensorRtSession:
    return TensorRtSession(path)


def unavailable(precision: str) -> str | None:  # noqa: ARG001 (the engine carries its precision)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "the tensorrt package is not installed (pip install -e '.[tensorrt]' on a machine with an NVIDIA GPU)"
    return None if torch.cuda.is_available() else "no CUDA GPU is visible (torch.cuda.is_available() is False)"
