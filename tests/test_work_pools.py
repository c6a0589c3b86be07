"""The deployments on real work pools: `edgeslim deploy` (pools + `prefect deploy --all` from prefect.yaml),
two `prefect worker start` processes on the cpu pool and one on the gpu pool, each in a folder of its
own with a checkout of its own, and `edgeslim compress-many` over three registered models with
finetuning placed on the gpu pool (``steps.finetune.work_pool``). The cpu worker of one compress run is
killed, with the run, while its finetune step runs (a lost machine: nobody is left to report the run).
Its heartbeats stop, the automation `edgeslim deploy` created marks it crashed (flows/crash_detection.py),
it publishes nothing, and a rerun of the same compress-many publishes it once (the other two are found
already published).

Nothing is shared between the workers but the Prefect API and the MLflow server: each worker's flow
runs cd into its own checkout (the pull step reads EDGESLIM_CODE_DIR from the worker's environment)
and keep their datasets and run folders there; the finetune step's files travel through MLflow.
This test is about placement, not accuracy (the session's demo run gates the real recipe): the cut is
small, finetuning is one epoch, and the mAP gate is at half the reference so that all three publish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from conftest import REPO, error_line, run_cli, write_params
from mlflow import MlflowClient
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from benchmarks.local_workers import LocalWorker, checkout
from edgeslim.config import load_params
from flows.crash_detection import NAME, ensure_crash_detection
from flows.deployments import HEARTBEAT_ENV, ensure_pools

SOURCES = ("line-a", "line-b", "line-c")
KILL_WAIT_S = 600
POLL_S = 2
# The runs' logs stay in the workers' own logs: shipped to the sqlite-backed test server too, they slowed
# it to a 60 s read timeout while the rest of the suite ran alongside.
QUIET = {"PREFECT_LOGGING_TO_API_ENABLED": "false"}
COMPRESS_MANY_S = 1200
# placement, not accuracy (see above): a small cut, one finetune epoch on the gpu pool, a gate every run passes
RECIPE = ("prune.target_macs_reduction=0.2", "prune.finetune.epochs=1", "gates.min_map_ratio=0.5")


def worker(name: str, pool: str, home: Path, tracking_uri: str, limit: int | None = None) -> LocalWorker:
    """A worker with a checkout of its own, whose params file is the tests' tiny one (its own workspace)."""
    code = checkout(home / "checkout")
    write_params(code / "params.yaml", code / "workspace")
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "YOLO_CONFIG_DIR": str(home / "yolo-config"), **QUIET, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    return LocalWorker(name, pool, home, code, load_params(code / "params.yaml").prefect.code_dir_env, env, limit)


@contextmanager
def api(url: str) -> Iterator[SyncPrefectClient]:
    """A client of the session's Prefect server (this process imported Prefect before its URL was set)."""
    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        yield client


def _flow_runs(url: str, ids: list[str]) -> list:
    with api(url) as client:
        return [client.read_flow_run(i) for i in ids]


def _kill_a_worker_mid_run(url: str, step_deployment_id: UUID, workers: list[LocalWorker]) -> tuple[UUID, LocalWorker]:
    """SIGKILL the first compress run whose finetune step is running on the gpu pool, and the cpu worker that
    started it (what a lost machine does: no process is left to report the run), before it can publish;
    the run's id and its worker."""
    running = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[step_deployment_id]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
    )
    deadline = time.monotonic() + KILL_WAIT_S
    with api(url) as client:
        while time.monotonic() < deadline:
            try:
                steps = client.read_flow_runs(flow_run_filter=running)
                if steps and steps[0].parent_task_run_id:
                    child = client.read_flow_run(client.read_task_run(steps[0].parent_task_run_id).flow_run_id)  # type: ignore[arg-type]
                    if child.infrastructure_pid:
                        pid = int(child.infrastructure_pid)
                        worker = next(w for w in workers if w.started(pid))
                        os.killpg(worker.proc.pid, signal.SIGKILL)
                        os.killpg(pid, signal.SIGKILL)
                        worker.proc.wait()
                        print(f"killed worker {worker.name} and run {child.id} at {time.time():.1f}")  # for the notes: the crash's delay
                        return child.id, worker
            except httpx.TimeoutException:  # the sqlite-backed test server, slow under the whole suite's load: ask again
                pass
            time.sleep(POLL_S)
    pytest.fail("no finetune step ran on the gpu pool in time")


def _compress_many(refs: list[str], params_file: Path, placed: tuple[str, ...], tracking_uri: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edgeslim.cli", "compress-many", *refs, "--params", str(params_file), *placed]
    env = {**os.environ, **QUIET, "MLFLOW_TRACKING_URI": tracking_uri}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.long
def test_compress_many_on_pool_workers_publishes_each_model_once_even_after_a_crashed_run(champion, prefect_api, params_file, tmp_path):
    p = load_params(params_file)
    with api(prefect_api) as client:  # another test on this worker's server may have deployed already
        for existing in client.read_automations_by_name(NAME):
            client.delete_automation(existing.id)
    deployed = run_cli("deploy", "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": champion})
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-3000:]
    with api(prefect_api) as client:
        assert client.read_work_pool(p.prefect.cpu_pool).type == "process" and client.read_work_pool(p.prefect.gpu_pool).type == "process"
        compress = client.read_deployment_by_name(f"edgeslim-compress/{p.triggers.compress_deployment}")
        retrain = client.read_deployment_by_name(f"edgeslim-retrain/{p.triggers.retrain_deployment}")
        many = client.read_deployment_by_name(f"edgeslim-compress-many/{p.prefect.compress_many_deployment}")
        step = client.read_deployment_by_name(f"edgeslim-step/{p.prefect.gpu_pool}")
    assert {d.work_pool_name for d in (compress, retrain, many)} == {p.prefect.cpu_pool} and step.work_pool_name == p.prefect.gpu_pool
    assert compress.entrypoint == "flows/compress.py:compress_flow" and compress.parameters == {"params_file": "params.yaml"}
    assert compress.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $EDGESLIM_CODE_DIR }}"}}]
    assert [s.schedule.cron for s in retrain.schedules] == [p.triggers.retrain.cron]  # type: ignore[union-attr]
    assert compress.job_variables == {"env": {HEARTBEAT_ENV: str(p.prefect.heartbeat_s)}}, "runs beat at the automation's pace"
    assert f"automation {NAME!r}: created" in deployed.stderr
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        assert ensure_pools(p) == [], "a second deploy creates no pool"
        assert ensure_crash_detection(p) == "unchanged", "nor a second automation"

    client = MlflowClient(champion, champion)
    for name in SOURCES:
        mv = client.copy_model_version(f"models:/{p.model_name}@{p.mlflow.source_alias}", name)
        client.set_registered_model_alias(name, p.mlflow.source_alias, mv.version)

    # one run at a time per cpu worker, so that killing a worker kills exactly one compress run
    workers = [worker(f"cpu-{i}", p.prefect.cpu_pool, tmp_path / f"cpu-{i}", champion, limit=1) for i in (1, 2)]
    gpu = worker("gpu-1", p.prefect.gpu_pool, tmp_path / "gpu-1", champion)
    workers.append(gpu)
    refs = [f"{name}@{p.mlflow.source_alias}" for name in SOURCES]
    placed = ("-S", f"steps.finetune.work_pool={p.prefect.gpu_pool}", *(a for o in RECIPE for a in ("-S", o)))
    try:
        for w in workers:
            w.wait_ready()
        first = _compress_many(refs, params_file, placed, champion)
        victim, lost = _kill_a_worker_mid_run(prefect_api, step.id, workers[:2])
        _, first_err = first.communicate(timeout=COMPRESS_MANY_S)
        rerun = _compress_many(refs, params_file, placed, champion)
        rerun_out, rerun_err = rerun.communicate(timeout=COMPRESS_MANY_S)
        logs = "".join(w.log.read_text()[-2000:] for w in workers)
    finally:
        for w in workers:
            w.stop()

    # The killed run is Crashed (by the heartbeat automation: its worker was gone) and published nothing; the
    # others published; compress-many says so and exits 2. The rerun ran on the worker left.
    killed = _flow_runs(prefect_api, [str(victim)])[0]
    assert killed.state_type.value == "CRASHED" and "no heartbeat" in (killed.state.message or ""), killed.state  # type: ignore[union-attr]
    assert lost.proc.returncode == -signal.SIGKILL
    print(f"marked {killed.state_type.value} at {killed.state.timestamp.timestamp():.1f}: {killed.state.message}")  # type: ignore[union-attr]
    assert first.returncode == 2, first_err[-4000:] + logs
    assert "1 of 3 runs published nothing" in first_err and "Crashed" in first_err, first_err[-3000:]
    victim_model = killed.parameters["model"]
    # The rerun publishes the crashed one once; the others were already published, and nothing is published twice.
    assert rerun.returncode == 0, rerun_err[-4000:] + logs
    rows = json.loads(Path(rerun_out.strip().splitlines()[-1]).read_text())["runs"]
    assert [(r["model"], r["edge_version"]) for r in rows] == [(f"{n}@champion", f"{n}-edge:1") for n in SOURCES]
    assert {r["model"]: r["outcome"] for r in rows} == {
        f"{n}@champion": "published" if f"{n}@champion" == victim_model else "already published" for n in SOURCES
    }
    for name in SOURCES:
        assert [v.version for v in client.search_model_versions(f"name = '{name}-edge'")] == ["1"], name
    children = _flow_runs(prefect_api, [r["flow_run_id"] for r in rows])
    assert {c.state_type.value for c in children} == {"COMPLETED"}  # type: ignore[union-attr]
    assert {c.deployment_id for c in children} == {compress.id} and {c.work_pool_name for c in children} == {p.prefect.cpu_pool}
    with api(prefect_api) as prefect:
        parents = {prefect.read_task_run(c.parent_task_run_id).flow_run_id for c in children}  # type: ignore[arg-type]
        assert len(parents) == 1, "every child is a sub-flow of the one compress-many run"
    # No shared disk: each compress run ran in a cpu worker's checkout and left its run folder there ...
    reports = [
        json.loads(f.read_text()) for w in workers[:2] for f in (w.home / "checkout" / "workspace" / "runs").glob("compress-*/report.json")
    ]
    published = [r for r in reports if r.get("published") and not r["published"].get("reused")]
    assert sorted(r["published"]["model"] for r in published) == [f"{n}-edge" for n in SOURCES]
    assert not list((gpu.home / "checkout" / "workspace" / "runs").glob("compress-*"))
    # ... and each finetune step ran on the gpu worker as a sub-flow of its compress run, its files moved through MLflow.
    placements = [r["details"]["finetune_placement"] for r in published]
    assert {pl["work_pool"] for pl in placements} == {p.prefect.gpu_pool} and all(
        r["details"]["finetune"]["epochs_run"] == 1 for r in published
    )
    step_runs = _flow_runs(prefect_api, [pl["flow_run_id"] for pl in placements])
    assert {s.state_type.value for s in step_runs} == {"COMPLETED"} and {s.work_pool_name for s in step_runs} == {p.prefect.gpu_pool}  # type: ignore[union-attr]
    with api(prefect_api) as prefect:
        compress_runs = {prefect.read_task_run(s.parent_task_run_id).flow_run_id for s in step_runs}  # type: ignore[arg-type]
    assert len(compress_runs) == len(SOURCES) and not list((tmp_path / "cpu-1" / "checkout" / "workspace" / "runs").glob("step-*"))


def test_compress_many_refuses_an_unknown_target_before_starting_anything(mlflow_server, prefect_api, params_file):
    result = run_cli(
        "compress-many", "line-x@champion=riscv", "--params", str(params_file), env_extra={"MLFLOW_TRACKING_URI": mlflow_server}
    )
    assert result.returncode == 2
    assert "unknown target 'riscv'" in error_line(result)
