"""The models a benchmark compresses: the converged reference (registered), and yolov8n trained here.

Both are trained on the embedded set by benchmarks.references (once, cached). The converged
reference is also registered (``benchmark.converged_model_name``, alias ``mlflow.source_alias``)
so that ``edgeslim compress`` takes exactly the model the benchmark measured; a rerun finds the
version by its training key instead of registering it again. ``--model`` benchmarks another
registered model in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.references import converged_params, trained_reference, yolov8n_params
from edgeslim import workspace
from edgeslim.config import BaselineParams, Params
from edgeslim.data.splits import split_images
from edgeslim.digest import file_sha256
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.references import parse_source
from edgeslim.registry.register_source import register_source
from edgeslim.registry.sources import pull

# A registered reference's identity: its training key (params + data hash) and its weights' sha256,
# so that a reference trained further under the same key (a resumed training) registers anew.
REFERENCE_KEY_TAG = "edgeslim.reference_key"
SHA_CHARS = 16


@dataclass(frozen=True)
class Subject:
    """One model to benchmark: its source checkpoint and the image size it runs at."""

    key: str  # short id used in folder names and the JSON
    label: str  # what the tables call it
    weights: Path
    imgsz: int
    trained: bool
    origin: dict  # where it came from (registry name/version/run, training facts)
    overrides: tuple[str, ...] = ()  # params its compress run takes on top of the benchmark's
    recipe: BaselineParams | None = None  # the architecture it was trained from, when known (not for --model)


def converged_subject(tracking_uri: str, p: Params, on_own_data: tuple[str, ...], root: Path, dest: Path) -> Subject:
    """Train (or reuse) the converged reference on its own set (``p`` carries ``on_own_data``, the
    overrides its compress runs take too), register it once, and pull it back as the flow would."""
    data = workspace.dataset(p)
    recipe = converged_params(p)
    ref = trained_reference("converged", recipe, p, data, root)
    client = reg.connect(tracking_uri)
    name = p.benchmark.converged_model_name
    identity = f"{ref.key}-{file_sha256(ref.weights)[:SHA_CHARS]}"
    found = reg.published_with_key(client, name, REFERENCE_KEY_TAG, identity)
    if found is None:
        example = split_images(data.data_yaml, "val")[0]
        mv = register_source(
            client,
            parse_source(str(ref.weights), p.mlflow.source_alias),
            name,
            p.mlflow.source_alias,
            p.mlflow.experiment,
            dest / "register",
            example,
        )
        client.set_model_version_tag(name, mv.version, REFERENCE_KEY_TAG, identity)
        print(f"registered the converged reference as {name} version {mv.version} @ {p.mlflow.source_alias}")
        version = str(mv.version)
    else:  # the alias may have moved since: point it back, so `--model NAME@ALIAS` is what was measured
        version = found["version"]
        client.set_registered_model_alias(name, p.mlflow.source_alias, version)
    pulled = pull(client, reg.ModelRef(name, None, version), dest / "source")
    return Subject(
        key="converged",
        label=f"{pulled.name} v{pulled.version} (the converged reference: {ref.epochs_run} epochs, {ref.stopped_by}) @ {ref.imgsz} px",
        weights=pulled.weights,
        imgsz=ref.imgsz,
        trained=True,
        origin={"registry": tracking_uri, "name": pulled.name, "version": pulled.version, "training": ref.as_dict()},
        overrides=on_own_data,
        recipe=recipe,
    )


def registered_subject(tracking_uri: str, model: str, p: Params, dest: Path) -> Subject:
    """``model`` (NAME, NAME@ALIAS or NAME:VERSION) from the registry, at ``baseline.imgsz``."""
    client = reg.connect(tracking_uri)
    pulled = pull(client, reg.ModelRef.parse(model, p.mlflow.source_alias), dest)
    return Subject(
        key="registered",
        label=f"{pulled.name} v{pulled.version} @ {p.baseline.imgsz} px",
        weights=pulled.weights,
        imgsz=p.baseline.imgsz,
        trained=True,
        origin={"registry": tracking_uri, "reference": model, "name": pulled.name, "version": pulled.version, "run_id": pulled.run_id},
    )


def yolov8n_subject(p: Params, on_own_data: tuple[str, ...], root: Path) -> Subject:
    """ultralytics' yolov8n network (family and scale of its yaml) trained on the embedded set, rendered
    at its own size (``p`` carries ``on_own_data``, the overrides its compress runs take too)."""
    data = workspace.dataset(p)
    recipe = yolov8n_params(p)
    ref = trained_reference("yolov8n", recipe, p, data, root)
    return Subject(
        key="yolov8n",
        label=f"yolov8n (trained here, {ref.epochs_run} epochs, {len(data.names)} classes) @ {ref.imgsz} px",
        weights=ref.weights,
        imgsz=ref.imgsz,
        trained=True,
        origin={"ultralytics_family": p.benchmark.yolov8n.arch, "scale": list(p.benchmark.yolov8n.scale), "training": ref.as_dict()},
        overrides=(*on_own_data, f"prune.finetune.epochs={p.benchmark.yolov8n.finetune_epochs}"),
        recipe=recipe,
    )
