"""Look at what the MLflow UI shows for a published edge version, in headless Chromium.

Why a browser: MLflow 3's UI decides on the client side which page an experiment opens on (its
GenAI overview or the training-runs table) and renders the version description as Markdown; only
a rendered page shows what a user sees. The script opens the pages edgeslim links to, saves a
screenshot of each, and checks their text: the experiment lists the compress run, the version
description ends with the publication, the run's artifacts hold the Pareto plot.

    python scripts/mlflow_ui_screenshots.py --tracking-uri http://127.0.0.1:5000 \\
        --model pcb-detector-edge@candidate --out workspace/ui

Needs Chromium (Debian: `apt-get install chromium`; or --chromium PATH). Exit 1 names each page whose
text is not what it should be; the screenshots are written either way.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from edgeslim.lineage import RUN_ID_TAG
from edgeslim.registry.tracking import ui_url

# Chromium as this machine's closed network wants it: no background connections, no first-run UI.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars")  # fmt: skip
WINDOW = "1400,1000"
RENDER_BUDGET_MS = 20000  # virtual time for the single-page app to fetch and render


@dataclass(frozen=True)
class Page:
    name: str
    url: str
    expect: tuple[str, ...]  # texts the rendered page must contain


def pages(client: MlflowClient, tracking_uri: str, model: str, alias: str) -> list[Page]:
    """The pages a user reaches from edgeslim's links for ``model@alias``, and what each must show."""
    mv = client.get_model_version_by_alias(model, alias)
    run = client.get_run(mv.tags[RUN_ID_TAG])
    exp = run.info.experiment_id
    return [
        Page("experiment", ui_url(tracking_uri, f"experiments/{exp}"), (run.info.run_name or run.info.run_id,)),
        Page("version", ui_url(tracking_uri, f"models/{model}/versions/{mv.version}"), ("Published", f"version {mv.version}")),
        Page("pareto", ui_url(tracking_uri, f"experiments/{exp}/runs/{run.info.run_id}/artifacts/pareto.png"), ("pareto.png",)),
    ]


def render(chromium: str, url: str, out: Path) -> str:
    """Screenshot ``url`` into ``out``; return the rendered DOM's text."""
    with tempfile.TemporaryDirectory() as profile:
        common = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW}", f"--virtual-time-budget={RENDER_BUDGET_MS}"]
        subprocess.run([*common, f"--screenshot={out}", url], check=True, capture_output=True, timeout=120)
        dom = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120)
    return dom.stdout


def check(tracking_uri: str, model: str, alias: str, out: Path, chromium: str) -> list[str]:
    """Render every page; the problems found (empty when each page shows what it should)."""
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    for page in pages(MlflowClient(tracking_uri, tracking_uri), tracking_uri, model, alias):
        dom = render(chromium, page.url, out / f"{page.name}.png")
        (out / f"{page.name}.html").write_text(dom)
        missing = [text for text in page.expect if text not in dom]
        print(f"{page.name}: {page.url} -> {out / f'{page.name}.png'}" + (f"  MISSING {missing}" if missing else "  ok"))
        problems += [f"{page.name} page ({page.url}) does not show {text!r}" for text in missing]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--model", required=True, help="MODEL@ALIAS of the published edge version")
    ap.add_argument("--out", type=Path, default=Path("workspace/ui"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    args = ap.parse_args(argv)
    model, _, alias = args.model.partition("@")
    problems = check(args.tracking_uri, model, alias or "candidate", args.out, args.chromium)
    for problem in problems:
        print(f"ui check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
