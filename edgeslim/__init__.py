"""edgeslim: a YOLO model from the MLflow registry, made smaller and faster, verified, and shipped to the edge.

ultralytics reads its environment once, at its first import: offline (nothing can be downloaded here),
no auto-install, and quiet (no progress bars in a flow's log). Many modules import it directly, and
any of them may be the first; this package's own import runs before all of them, so the environment
is set here (nothing is written: an edge agent imports this package too).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("YOLO_CONFIG_DIR", str(Path.home() / ".config" / "edgeslim-ultralytics"))  # made by edgeslim.ultra
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_VERBOSE", "False")
