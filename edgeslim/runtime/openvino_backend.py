"""OpenVINO: the openvino-fp32/-bf16/-int8 formats. IR conversion, NNCF INT8, and sessions whose
precision is set explicitly.

Why explicit: OpenVINO's CPU plugin computes in bf16 by default wherever the CPU has AMX or
AVX512-BF16 (outputs differ from FP32 by ~1e-3 relative), and ultralytics' OpenVINO backend takes
that default. A session here always names ``INFERENCE_PRECISION_HINT`` and checks that the compiled
model took it; the validator runs under :func:`forced_precision` so that each format's mAP is the
mAP of the precision it ships at.

The IR is laid out as ultralytics' ``format=openvino`` export lays it out (``<stem>_openvino_model/``
with ``<stem>.xml``, ``<stem>.bin`` and ``metadata.yaml``, the same rt_info), so ``YOLO(dir)`` and
its validator read it.
"""

from __future__ import annotations

import ast
import contextlib
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from edgeslim.errors import CheckpointError
from edgeslim.runtime.cpu import has_bf16
from edgeslim.runtime.formats import BF16, FP32, IR_SUFFIX
from edgeslim.runtime.ports import IOSpec

HINTS = {FP32: ov.Type.f32, BF16: ov.Type.bf16}
METADATA = "metadata.yaml"


def ir_xml(path: Path) -> Path:
    """The ``.xml`` of an IR given as the file or its folder; a clear error when it is not a whole IR."""
    path = Path(path)
    xml = path if path.suffix == ".xml" else next(iter(sorted(path.glob("*.xml"))), None) if path.is_dir() else None
    if xml is None or not xml.is_file():
        raise CheckpointError(f"{path} is not an OpenVINO IR (no .xml in it)")
    if not xml.with_suffix(".bin").is_file():
        raise CheckpointError(f"OpenVINO IR {xml.name} has no weights file {xml.with_suffix('.bin').name} beside it")
    return xml


def read_model(path: Path) -> ov.Model:
    xml = ir_xml(path)
    try:
        return ov.Core().read_model(str(xml), str(xml.with_suffix(".bin")))
    except RuntimeError as exc:
        raise CheckpointError(f"OpenVINO cannot read {xml.name}: {str(exc).strip().splitlines()[0][:200]}") from None


def _shape(port: Any) -> list[Any]:
    return [d.get_length() if d.is_static else None for d in port.get_partial_shape()]


def port_name(port: Any, index: int, kind: str) -> str:
    """A port's tensor name; ``output<i>`` for one without (an IR converted from torch, as ultralytics makes them)."""
    return port.get_any_name() if port.get_names() else f"{kind}{index}"


def ports(ports_: Any, kind: str) -> list[IOSpec]:
    return [IOSpec(port_name(p, i, kind), _shape(p)) for i, p in enumerate(ports_)]


class OpenVinoSession:
    """A compiled model on the CPU at an explicit precision, one infer request, sync calls.

    ``precision=None`` takes the runtime's default: only the benchmark does, to measure what a user of
    ``yolo export format=openvino`` gets; ``precision`` then says what it turned out to be."""

    def __init__(self, model: ov.Model, precision: str | None, threads: int | None) -> None:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = HINTS[precision]
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(model, "CPU", config)
        took = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        if precision is not None and took != HINTS[precision]:
            raise RuntimeError(f"OpenVINO compiled the model at {took}, not the {precision} that was asked for")
        self.precision = precision or next((name for name, hint in HINTS.items() if hint == took), str(took))
        self._request = self.compiled.create_infer_request()
        self._inputs, self._outputs = ports(self.compiled.inputs, "input"), ports(self.compiled.outputs, "output")

    def get_inputs(self) -> list[IOSpec]:
        return self._inputs

    def get_outputs(self) -> list[IOSpec]:
        return self._outputs

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        index_in = {o.name: i for i, o in enumerate(self._inputs)}
        self._request.infer({index_in[k]: v for k, v in feeds.items()})
        names = list(output_names or [o.name for o in self._outputs])
        index = {o.name: i for i, o in enumerate(self._outputs)}
        return [self._request.get_output_tensor(index[n]).data.copy() for n in names]


def open_session(path: Path, precision: str | None, threads: int | None = None) -> OpenVinoSession:
    if precision == BF16 and not has_bf16():
        raise RuntimeError("this CPU has neither AMX nor AVX512-BF16: it cannot run the openvino-bf16 format")
    return OpenVinoSession(read_model(path), precision, threads)


def unavailable(precision: str) -> str | None:
    if precision == BF16 and not has_bf16():
        return "this CPU has neither AMX nor AVX512-BF16 (OpenVINO would emulate bf16 or refuse it)"
    return None


def version() -> str:
    return str(ov.__version__)


def ir_dir(stem: str, parent: Path) -> Path:
    """``<parent>/<stem>_openvino_model`` (ultralytics' name, which its loader recognizes)."""
    return parent / f"{stem}{IR_SUFFIX}"


def _model_info(model: ov.Model, metadata: Mapping[str, Any]) -> None:
    """The rt_info ultralytics' exporter writes (OpenVINO's model_info conventions)."""
    model.set_rt_info("YOLO", ["model_info", "model_type"])
    model.set_rt_info(True, ["model_info", "reverse_input_channels"])
    model.set_rt_info(114, ["model_info", "pad_value"])
    model.set_rt_info([255.0], ["model_info", "scale_values"])
    names = metadata.get("names") or {}
    model.set_rt_info([str(v).replace(" ", "_") for v in names.values()], ["model_info", "labels"])
    model.set_rt_info("fit_to_window_letterbox", ["model_info", "resize_type"])


def save_ir(model: ov.Model, out_dir: Path, stem: str, metadata: Mapping[str, Any]) -> Path:
    """``model`` as an ultralytics-layout IR folder (replaced whole if it exists); returns the folder."""
    from ultralytics.utils import YAML

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    _model_info(model, metadata)
    ov.save_model(model, str(out_dir / f"{stem}.xml"), compress_to_fp16=False)  # FP32 weights: the precision is the format's
    YAML.save(out_dir / METADATA, dict(metadata))
    return out_dir


def label(ir: Path, fmt: str, key: str) -> Path:
    """Write ``fmt`` under ``key`` in the IR's metadata.yaml, so a downloaded folder says how it is to be run."""
    from ultralytics.utils import YAML

    YAML.save(ir / METADATA, {**YAML.load(ir / METADATA), key: fmt})
    return ir


def onnx_metadata(onnx_path: Path) -> dict[str, Any]:
    """ultralytics' metadata of an exported ONNX (names, stride, imgsz, task, args...), typed as its
    exporter writes ``metadata.yaml`` (the ONNX holds every value as a string)."""
    from ultralytics.nn.backends.base import BaseBackend

    meta = dict(BaseBackend.read_metadata(onnx_path))
    for k, v in meta.items():
        if k in {"stride", "batch", "channels"}:
            meta[k] = int(v)
        elif k in {"imgsz", "names", "kpt_shape", "kpt_names", "args", "end2end"} and isinstance(v, str):
            meta[k] = ast.literal_eval(v)
    return meta


def convert_onnx(onnx_path: Path, out_dir: Path, stem: str) -> Path:
    """The IR of an ONNX model (static shapes as the ONNX has them), with its ultralytics metadata."""
    return save_ir(ov.convert_model(str(onnx_path)), out_dir, stem, onnx_metadata(onnx_path))


def ignored_patterns(float_nodes: Sequence[str]) -> list[str]:
    """ONNX node names → patterns over the IR's op names (the ONNX frontend names an op after its node, a
    node that becomes several ops gets ``<node>/<suffix>`` names): NNCF's ignored scope for them."""
    return [f"^{re.escape(n)}(/.*)?$" for n in float_nodes]


def quantize_ptq(
    ir: Path, images: Iterable[np.ndarray], out_dir: Path, stem: str, ignored: Sequence[str], subset_size: int, metadata: Mapping[str, Any]
) -> Path:
    """NNCF post-training INT8 (mixed preset: symmetric weights, asymmetric activations) of the IR,
    calibrated on ``images``; the ops whose names match the regular expressions ``ignored`` stay float."""
    import nncf

    data = nncf.Dataset(list(images))
    model = nncf.quantize(
        read_model(ir),
        data,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=subset_size,
        ignored_scope=nncf.IgnoredScope(patterns=list(ignored), validate=False),
    )
    return save_ir(model, out_dir, stem, metadata)


def quantize_accuracy_control(
    ir: Path,
    images: Iterable[np.ndarray],
    out_dir: Path,
    stem: str,
    ignored: Sequence[str],
    subset_size: int,
    metadata: Mapping[str, Any],
    score: Callable[[Path], float],
    max_drop: float,
    max_layers: int,
) -> Path:
    """NNCF's ``quantize_with_accuracy_control``: it reverts the most damaging layers to float until
    the relative drop of ``score`` (the mAP, through the one validator, of the model saved as an IR)
    fits ``max_drop``. Its validation data is a placeholder: ``score`` reads the val split itself."""
    import nncf

    work = out_dir.parent / f"{out_dir.name}.accuracy-control"
    sources: dict[int, Any] = {}  # id(compiled model) → the model NNCF compiled it from

    def validate(compiled: Any, _: Iterable[Any]) -> float:
        shutil.rmtree(work, ignore_errors=True)
        model = sources[id(compiled)]
        return score(save_ir(ov.Model(model) if not isinstance(model, ov.Model) else model.clone(), work, stem, metadata))

    with _recording_compiles(sources):
        model = nncf.quantize_with_accuracy_control(
            read_model(ir),
            nncf.Dataset(list(images)),
            nncf.Dataset([0]),  # one item: the score reads the whole val split itself
            validate,
            max_drop=max_drop,
            drop_type=nncf.DropType.RELATIVE,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=subset_size,
            ignored_scope=nncf.IgnoredScope(patterns=list(ignored), validate=False),
            advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(max_num_iterations=max_layers),
        )
    shutil.rmtree(work, ignore_errors=True)
    return save_ir(model, out_dir, stem, metadata)


@contextlib.contextmanager
def _recording_compiles(sources: dict[int, Any]) -> Iterator[None]:
    """NNCF hands its validation function compiled models; ultralytics' validator reads an IR. Remember
    which model each compiled model came from, so that it can be saved as one."""
    original = ov.Core.compile_model

    def compile_model(self: ov.Core, model: Any, *args: Any, **kw: Any) -> Any:
        compiled = original(self, model, *args, **kw)
        if not isinstance(model, (str, Path)):
            sources[id(compiled)] = model
        return compiled

    ov.Core.compile_model = compile_model
    try:
        yield
    finally:
        ov.Core.compile_model = original


def fake_quantized_layers(ir: Path) -> int:
    """How many FakeQuantize nodes an IR holds (0: nothing was quantized)."""
    return sum(op.get_type_name() == "FakeQuantize" for op in read_model(ir).get_ops())


def float_convolutions(ir: Path) -> list[str]:
    """Convolutions whose weights are not stored int8 (NNCF compresses a quantized one's to an int8
    constant): the layers that stay float."""
    kept = []
    for op in read_model(ir).get_ops():
        if op.get_type_name() != "Convolution":
            continue
        source = op.input_value(1).get_node()
        while source.get_input_size() > 0:
            source = source.input_value(0).get_node()
        if source.get_element_type() != ov.Type.i8:
            kept.append(op.get_friendly_name())
    return kept


@contextlib.contextmanager
def forced_precision(precision: str, threads: int | None = None) -> Iterator[None]:
    """Every CPU compile inside the block at ``precision`` (ultralytics' backend compiles with the
    runtime's default, which is bf16 on AMX/AVX512-BF16 CPUs): the validator scores the format as it ships."""
    original = ov.Core.compile_model

    def compile_model(self: ov.Core, model: Any, device_name: str | None = None, config: dict | None = None, **kw: Any) -> Any:
        config = {**(config or {}), "INFERENCE_PRECISION_HINT": HINTS[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        return original(self, model, device_name or "CPU", config, **kw)

    ov.Core.compile_model = compile_model
    try:
        yield
    finally:
        ov.Core.compile_model = original
