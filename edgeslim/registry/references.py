"""Source references, parsed without touching MLflow: what ``--model``, ``compress.source`` and
``edgeslim register`` accept, checked before anything (Prefect, MLflow, a download) starts.

- ``NAME``, ``NAME@ALIAS``, ``NAME:VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``: a registered version;
- ``runs:/<run_id>/<path>``: a run artifact, a file (``weights/best.pt``) or a folder (``weights``);
- a local ``.pt`` file, or a local ``.onnx`` file (then only the ONNX steps run).

Resolving one to a local model file is :mod:`edgeslim.registry.sources`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgeslim.agent.smoke import IMAGE_CHANNELS, IMAGE_RANK
from edgeslim.errors import CheckpointError, RegistryError
from edgeslim.models.onnx_model import ONNX_SUFFIX
from edgeslim.runtime.formats import IR_SUFFIX

_REF = re.compile(r"^(?P<name>[^@:/]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|:(?P<version>\d+))?$")
_RUNS = re.compile(r"^runs:/(?P<run>[0-9a-f]{32})/(?P<path>[^\s]+)$")
_MODELS = re.compile(r"^models:/(?P<name>[^/@\s]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))$")
SUFFIXES = (".pt", ONNX_SUFFIX)  # model files, in the order a folder's are preferred (a checkpoint runs every step)
FORMS = "NAME, NAME@ALIAS or NAME:VERSION, models:/NAME@ALIAS, models:/NAME/VERSION, runs:/<run_id>/<path>, or a local .pt or .onnx file"


@dataclass(frozen=True)
class ModelRef:
    """``name@alias`` or ``name:version`` (bare ``name`` takes the default alias)."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str, default_alias: str) -> "ModelRef":
        match = _REF.match(text.strip())
        if not match:
            raise RegistryError(f"model reference {text!r} is not NAME, NAME@ALIAS or NAME:VERSION")
        alias, version = match["alias"], match["version"]
        return cls(match["name"], alias if alias or version else default_alias, version)

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}:{self.version}"


@dataclass(frozen=True)
class Source:
    """A parsed source reference: exactly one of ``registered``, ``run_id`` (+ ``artifact_path``) or ``file``."""

    text: str
    registered: ModelRef | None = None
    run_id: str | None = None
    artifact_path: str | None = None
    file: Path | None = None


def _ir_source(path: Path) -> str:
    """Why an OpenVINO IR cannot be a source: what is wrong with it, or that edgeslim ships IRs, not reads them."""
    from edgeslim.runtime.openvino_backend import read_model  # its errors name a missing .bin or an unreadable xml

    model = read_model(path)
    shape = [d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape()] if model.inputs else []
    if len(model.inputs) != 1 or len(shape) != IMAGE_RANK or shape[1] != IMAGE_CHANNELS:
        return f"OpenVINO IR {path.name} takes input shape {shape}, not one Nx3xHxW image: it is not an ultralytics detector export"
    return f"{path.name} is an OpenVINO IR, which edgeslim ships but does not compress: give --model the .pt or .onnx it came from"


def parse_source(text: str, default_alias: str) -> Source:
    """The kind of source ``text`` names (a bare NAME means NAME@``default_alias``)."""
    text = text.strip()
    if text.startswith("runs:/"):
        run = _RUNS.match(text)
        if not run:
            raise RegistryError(f"run reference {text!r} is not runs:/<32-hex run id>/<artifact path>")
        return Source(text, run_id=run["run"], artifact_path=run["path"].strip("/"))
    if text.startswith("models:/"):
        model = _MODELS.match(text)
        if not model:
            raise RegistryError(f"model reference {text!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
        return Source(text, registered=ModelRef(model["name"], model["alias"], model["version"]))
    if text.rstrip("/").endswith((".xml", IR_SUFFIX)):
        raise CheckpointError(_ir_source(Path(text).expanduser().resolve()))
    if text.endswith(SUFFIXES) or Path(text).is_file():
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise CheckpointError(f"model file {path} does not exist")
        return Source(text, file=path)
    try:
        return Source(text, registered=ModelRef.parse(text, default_alias))
    except RegistryError:
        raise RegistryError(f"model reference {text!r} is not {FORMS}") from None
