from __future__ import annotations

from edgeslim import workspace
from edgeslim.config import Params
from edgeslim.data.synthetic import DatasetInfo
from tasks.step import step


@step("dataset")
def dataset_task(p: Params) -> DatasetInfo:
    """Generate (once) or locate the dataset the params name."""
    info = workspace.dataset(p)
    print(f"dataset {info.root} sha256 {info.sha256[:12]} classes {list(info.names)}")
    return info
