"""Step ``source`` (DVC): the model the DVC pipeline compresses.

``compress.source: null`` is the ``baseline`` stage's model (a fresh clone reproduces with nothing
but params.yaml); any source reference the flow takes (a local ``.pt`` or ``.onnx``, ``runs:/...``,
``NAME@ALIAS``) names the user's own, fetched into the stage folder, and the baseline stage then
trains nothing (dvc.py). Its classes must be the dataset's. The flow's ``pull`` plays this role for
the Prefect runs.
"""

from __future__ import annotations

from edgeslim import workspace
from edgeslim.config import Params
from edgeslim.dag.outcome import Outcome
from edgeslim.dag.source import check_against_data, checked_source_facts, convergence_line, size_line, source_outcome
from edgeslim.dag.step import SOURCE, StepInput
from edgeslim.dag.steps.dataset import dataset_info
from edgeslim.errors import RegistryError
from edgeslim.registry.references import parse_source

SOURCE_PARAM = "compress.source"  # what DVC's baseline stage also reads: whether it has anything to train


def skip_when_source_named(p: Params) -> str | None:
    """The DVC baseline stage trains only when the pipeline compresses the baseline."""
    return f"compress.source names the model to compress ({p.compress.source}): nothing to train" if p.compress.source else None


def source(inp: StepInput, p: Params) -> Outcome:
    if p.compress.source is None:
        weights, reference = inp.outcome("baseline").artifact(SOURCE), "the baseline stage"
    else:
        ref = parse_source(p.compress.source, p.mlflow.source_alias)
        if ref.file is not None:
            weights = ref.file
        else:
            uri = workspace.tracking_uri(p)
            if not uri:
                raise RegistryError(f"compress.source {ref.text} is in MLflow: set MLFLOW_TRACKING_URI or mlflow.tracking_uri")
            from edgeslim.registry import mlflow_registry as reg  # MLflow (3 s to import) only for a registered source
            from edgeslim.registry.sources import fetch

            weights = fetch(reg.connect(uri), ref, inp.dir()).weights
        reference = ref.text
    facts = checked_source_facts(weights, p)
    check_against_data(facts, dataset_info(inp.outcome("dataset")), reference)
    print(f"source: {reference} ({facts['format']}), {size_line(facts)}")
    print(convergence_line(facts))
    return source_outcome(weights, {"reference": reference, **facts}, step=inp.step)
