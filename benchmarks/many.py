"""``python -m benchmarks.many``: three models compressed on two pool workers, against one after another.

The same three registered models (copies of the champion, so that each publishes to an edge model of
its own) are compressed three ways, with the same params and ``-S`` overrides:

- **in-process**: ``edgeslim compress --model NAME@ALIAS`` three times, one after another, each its own
  process (the one-machine path, no worker);
- **one after another on the workers**: ``edgeslim compress-many`` with ``prefect.max_concurrent=1``;
- **two at once**: the same with ``prefect.max_concurrent=2``, on two ``prefect worker start --limit 1``
  processes (``benchmarks/local_workers.py``: each in a folder and a checkout of its own), so that each
  worker takes one run at a time.

From the Prefect API, for each child run: seconds queued (created to Pending: a worker's poll picked it
up), starting (Pending to Running: the flow-run process started and imported its code) and running.
The dispatch overhead per sub-flow is what a run on a worker cost beyond the same run in-process.
Needs a Prefect server (PREFECT_API_URL) and the MLflow server with the champion (MLFLOW_TRACKING_URI or
``mlflow.tracking_uri``); runs ``edgeslim deploy``. The models it registers are deleted afterwards
(``--keep`` keeps them). Writes ``benchmarks/results/<name>.{json,md}``. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks.local_workers import LocalWorker, checkout
from benchmarks.paths import REPO, portable_path, results_main
from edgeslim.config import DEFAULT_PARAMS, Params, load_params
from edgeslim.errors import EdgeslimError

MODELS = 3
WORKERS = 2
RUN_TIMEOUT_S = 3600


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.many", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="many", help="result name (default: %(default)s)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="passed to every compress run")
    parser.add_argument("--keep", action="store_true", help="keep the registered models it creates")
    return parser


def _cli(*args: str, env: dict[str, str]) -> tuple[str, float]:
    """Run ``edgeslim ARGS`` from the repo; its last stdout line (the report) and its wall time."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "edgeslim.cli", *args], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )  # fmt: skip
    if done.returncode:
        raise EdgeslimError(f"`edgeslim {' '.join(args[:2])}` exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1], time.perf_counter() - start


def _phases(flow_run_id: str) -> dict[str, float]:
    """Queued (created to Pending), starting (Pending to Running) and running seconds of one flow run."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
        states = sorted(client.read_flow_run_states(flow_run_id), key=lambda s: s.timestamp)  # type: ignore[arg-type]
    first = {s.type.value: s.timestamp for s in reversed(states)}
    end = states[-1].timestamp
    return {
        "queued_s": round((first["PENDING"] - run.created).total_seconds(), 2),  # type: ignore[operator]
        "starting_s": round((first["RUNNING"] - first["PENDING"]).total_seconds(), 2),
        "running_s": round((end - first["RUNNING"]).total_seconds(), 2),
    }


def _sources(p: Params, tracking_uri: str, mode: str, tag: str) -> list[str]:
    """``MODELS`` copies of the champion, registered under names of this mode and run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, tracking_uri)
    names = [f"bench-{mode}-{i}-{tag}" for i in range(1, MODELS + 1)]
    for name in names:
        mv = client.copy_model_version(f"models:/{p.model_name}@{p.mlflow.source_alias}", name)
        client.set_registered_model_alias(name, p.mlflow.source_alias, mv.version)
    return names


def _delete(tracking_uri: str, names: list[str], suffix: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, tracking_uri)
    for name in (n for source in names for n in (source, f"{source}{suffix}")):
        if client.search_registered_models(f"name = '{name}'"):
            client.delete_registered_model(name)


def _on_workers(refs: list[str], args: argparse.Namespace, slots: int, env: dict[str, str]) -> dict[str, Any]:
    report, wall = _cli(
        "compress-many", *refs, "--params", str(args.params), *_sets(args), "-S", f"prefect.max_concurrent={slots}", env=env
    )
    rows = json.loads(Path(report).read_text())["runs"]
    if {r["outcome"] for r in rows} != {"published"}:
        raise EdgeslimError(f"compress-many with {slots} slot(s) did not publish every model: {[r['outcome'] for r in rows]}")
    phases = [_phases(r["flow_run_id"]) for r in rows]
    return {"wall_s": round(wall, 1), "runs": [{"model": r["model"], **ph} for r, ph in zip(rows, phases, strict=True)]}


def _own_params(code: Path, params_file: Path) -> Path:
    """The checkout with ``params_file`` as its params.yaml (a deployment run reads its checkout's), its
    workspace inside the checkout, so that the in-process and the worker runs compress alike."""
    data = yaml.safe_load(Path(params_file).read_text())
    (code / "params.yaml").write_text(yaml.safe_dump({**data, "workspace": "workspace"}, sort_keys=False))
    return code


def _sets(args: argparse.Namespace) -> list[str]:
    return [a for s in args.set for a in ("-S", s)]


def _mean(rows: list[dict], key: str) -> float:
    return round(statistics.mean(r[key] for r in rows), 2)


def run(args: argparse.Namespace) -> dict:
    from edgeslim import workspace

    p = load_params(args.params, args.set)
    uri = workspace.tracking_uri(p)
    if not os.environ.get("PREFECT_API_URL") or not uri:
        raise EdgeslimError("set PREFECT_API_URL (a `prefect server start`) and MLFLOW_TRACKING_URI (the server with the champion)")
    env = {"MLFLOW_TRACKING_URI": uri}
    _cli("deploy", "--params", str(args.params), env=env)
    tag = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    names = {mode: _sources(p, uri, mode, tag) for mode in ("inprocess", "one", "two")}
    try:
        inprocess = []
        for name in names["inprocess"]:
            _, wall = _cli("compress", "--model", f"{name}@{p.mlflow.source_alias}", "--params", str(args.params),
                           *_sets(args), "-S", f"model_name={name}", env=env)  # fmt: skip
            inprocess.append(round(wall, 1))
        with tempfile.TemporaryDirectory(prefix="bench-many-") as scratch:
            workers = []
            for i in range(1, WORKERS + 1):
                home = Path(scratch) / f"cpu-{i}"
                workers.append(
                    LocalWorker(f"bench-cpu-{i}", p.prefect.cpu_pool, home, checkout(home / "checkout"), p.prefect.code_dir_env, env)
                )
            try:
                for w in workers:
                    w.wait_ready()
                refs = {mode: [f"{n}@{p.mlflow.source_alias}" for n in names[mode]] for mode in ("one", "two")}
                one, two = _on_workers(refs["one"], args, 1, env), _on_workers(refs["two"], args, WORKERS, env)
            finally:
                for w in workers:
                    w.stop()
    finally:
        if not args.keep:
            _delete(uri, [n for ns in names.values() for n in ns], p.mlflow.edge_suffix)
    inprocess_s = round(sum(inprocess), 1)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "models": MODELS,
        "workers": WORKERS,
        "params": portable_path(args.params),
        "recipe": {
            "dataset_splits": p.dataset.splits.model_dump(),
            "baseline_imgsz": p.baseline.imgsz,
            "target_macs_reduction": p.prune.target_macs_reduction,
            "finetune_epochs": p.prune.finetune.epochs,
        },  # fmt: skip
        "overrides": args.set,
        "worker_query_s": float(os.environ.get("PREFECT_WORKER_QUERY_SECONDS", "10")),
        "inprocess": {"wall_s": inprocess_s, "runs_s": inprocess},
        "one_after_another_on_workers": one,
        "two_at_once_on_workers": two,
        "speedup_two_vs_one": round(one["wall_s"] / two["wall_s"], 3),
        "speedup_two_vs_inprocess": round(inprocess_s / two["wall_s"], 3),
        "dispatch_overhead_per_run_s": round((one["wall_s"] - inprocess_s) / MODELS, 1),
        "queued_mean_s": _mean(one["runs"] + two["runs"], "queued_s"),
        "starting_mean_s": _mean(one["runs"] + two["runs"], "starting_s"),
    }


def markdown(result: dict) -> str:
    one, two = result["one_after_another_on_workers"], result["two_at_once_on_workers"]

    def runs(mode: dict) -> str:
        return "; ".join(f"{r['queued_s']} / {r['starting_s']} / {r['running_s']}" for r in mode["runs"])

    return "\n".join([
        f"# {result['models']} models on {result['workers']} pool workers vs one after another ({result['when']})",
        "",
        f"{result['machine']['cpus']} CPUs; params `{result['params']}` (recipe {result['recipe']}), overrides "
        f"{' '.join(result['overrides']) or '(none)'}; workers poll every {result['worker_query_s']} s.",
        "",
        "| how | wall s | per run: queued / starting / running s |",
        "|---|---|---|",
        f"| in-process, one after another (`edgeslim compress` ×{result['models']}) | {result['inprocess']['wall_s']} | "
        + " ; ".join(f"{s} (whole process)" for s in result["inprocess"]["runs_s"]) + " |",
        f"| on the workers, one after another (`max_concurrent` 1) | {one['wall_s']} | {runs(one)} |",
        f"| on the workers, two at once (`max_concurrent` 2) | {two['wall_s']} | {runs(two)} |",
        "",
        f"Two at once: {result['speedup_two_vs_one']}× the speed of one after another on the workers, "
        f"{result['speedup_two_vs_inprocess']}× in-process. Dispatch overhead per sub-flow (one after another on the "
        f"workers minus in-process, per run): {result['dispatch_overhead_per_run_s']} s; of it, on average, "
        f"{result['queued_mean_s']} s queued until a worker's poll and {result['starting_mean_s']} s for the flow-run "
        "process to start and import its code.",
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    return results_main("python -m benchmarks.many", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
