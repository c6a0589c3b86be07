"""Shared fixtures: tiny params, a real `mlflow server` on a free loopback port, a trained tiny baseline.

Nothing here is mocked: the server is MLflow's own process with a sqlite store, flows run on one
real `prefect server` for the session (the demo run on Prefect's ephemeral server, the default a user
gets), and the baseline is really trained (tiny settings so CI stays fast).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from fleet_support import broker, keys, s3  # noqa: F401 (fixtures every test module may use)
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

REPO = Path(__file__).resolve().parents[1]

# Small enough to train on 2 CPU cores in about two minutes, large enough for a mAP that a broken
# quantization would visibly lose (measured: mAP50-95 ≈ 0.13, mAP50 ≈ 0.24 after 30 epochs, 113 s).
# Tests that exercise registry or fleet mechanics rather than compression pass NO_PRUNE to skip the
# prune/finetune stage (≈ 45 s per flow run); the session's `published` demo run keeps it on.
TINY = {
    "dataset": {"image_size": 160, "splits": {"train": 256, "val": 40, "calib_pool": 48}, "object_size": [24, 64]},
    "baseline": {"imgsz": 128, "epochs": 30, "batch": 16},
    "calibration": {"num_images": 24},
    # measured: 40% fewer MACs, then 8-10 epochs bring val mAP50-95 back to the 30-epoch baseline; 12 for margin
    # round_to 8: what the figures above were measured with (params.yaml's 16 is tuned for the default model)
    "prune": {"round_to": 8, "finetune": {"epochs": 12, "patience": 12}},
    "evaluate": {"latency_runs": 5, "latency_warmup": 1},
    "fleet": {"demo": {"enabled": False}},  # `edgeslim demo` without its local broker/agent; the fleet tests turn it on
    # ONNX Runtime formats only, on every CI CPU class: each OpenVINO format costs a validation (and INT8 an NNCF
    # run) per flow; the demo run (`published`) and tests/test_openvino.py cover the OpenVINO formats.
    "target": {"name": "x86-avx2", "profiles": {"x86-avx2": ["onnx-fp32", "onnx-int8"]}},
    # the fixed recipe: the demo run (`published`, SEARCH) and tests/test_search.py search
    "search": {"enabled": False},
}
# The demo run's search: the fixed recipe's level, SiLU kept or swapped, one 2-epoch rung (tests/test_search.py
# tests the selection itself on fixed latencies and scores).
SEARCH = ("-S", "search.enabled=true", "-S", "search.prune_levels=[0.4]", "-S", "search.rungs=[2]")
# The profile this machine's CPU matches, with params.yaml's OpenVINO candidates (the demo run and test_openvino.py).
OPENVINO_TARGET = ("-S", "target.name=auto", "-S", "target.profiles.x86-avx2=[openvino-fp32,onnx-fp32,onnx-int8]")


NO_PRUNE = ("-S", "prune.enabled=false")
PREFECT_START_S = 180
MLFLOW_START_S = 120
SEED_ENV = "EDGESLIM_TEST_SEED"  # the folder tests/champion_seed.py trains the run's champion in
SEED_TIMEOUT_S = 1800
SEED_POLL_S = 2
# The session's Prefect server runs only the services a test relies on: triggers (with actions), which evaluate
# the automation `edgeslim deploy` creates (flows/crash_detection.py). The scheduler stays off, or the retrain
# cron would start runs for the work pool test's workers; the rest would only add load to its sqlite store.
PREFECT_SERVICES_OFF = ("scheduler", "late_runs", "foreman", "repossessor", "cancellation_cleanup", "pause_expirations", "db_vacuum",
                        "event_persister", "event_logger", "cleanup_reconciler", "task_run_recorder")  # fmt: skip


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) else value
    return out


def write_params(path: Path, workspace: Path, extra: dict | None = None) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data = _merge(data, {**TINY, "workspace": str(workspace)})
    if extra:
        data = _merge(data, extra)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session", autouse=True)
def _offline_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("yolo-config")))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # The session `mlflow server` delivers registry webhooks to a receiver on loopback (test_triggers_e2e):
    # MLflow refuses http and private addresses unless told, and caches each event's webhook list 60 s.
    os.environ.update(MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https", MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true", MLFLOW_WEBHOOK_CACHE_TTL="1")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workspace")


@pytest.fixture(scope="session")
def params_file(workspace: Path) -> Path:
    return write_params(workspace / "params.yaml", workspace)


class SessionServer:
    """This process's real `mlflow server` (sqlite + local artifacts) on a free loopback port."""

    def __init__(self, root: Path) -> None:
        from edgeslim.registry.server import start_server

        self.root = root
        self.server = start_server(root, "127.0.0.1", 0, timeout_s=MLFLOW_START_S, detach=True)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        from champion_seed import stop_process_group

        stop_process_group(self.server.pid)

    def restore(self, store: Path) -> None:
        """Restart on the same port over a copy of ``store`` (whatever this server held is dropped)."""
        from edgeslim.registry.server import start_server

        self.stop()
        shutil.rmtree(self.root)
        shutil.copytree(store, self.root, ignore=shutil.ignore_patterns("server.*"))
        self.server = start_server(self.root, "127.0.0.1", urlsplit(self.url).port or 0, timeout_s=MLFLOW_START_S, detach=True)


@pytest.fixture(scope="session")
def session_server(tmp_path_factory: pytest.TempPathFactory):
    server = SessionServer(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mlflow_server(session_server: SessionServer) -> str:
    """The URL of this process's real `mlflow server`; stopped at teardown."""
    return session_server.url


def ultralytics_style_data_yaml(root: Path, folder: Path) -> Path:
    """The synthetic set at ``root`` described the way users' data.yaml files are: ``path:`` elsewhere,
    ``train`` a list of folders, ``val`` a ``.txt`` image list (``./`` lines), no ``calib_pool``."""
    val = sorted((root / "images" / "val").glob("*.jpg"))
    (root / "val.txt").write_text("".join(f"./images/val/{image.name}\n" for image in val))
    names = yaml.safe_load((root / "data.yaml").read_text())["names"]
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"path": str(root), "train": ["images/train", "images/calib_pool"], "val": "val.txt", "names": names}
    (folder / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder / "data.yaml"


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
    """One real `prefect server` the session's CLI runs report to (PREFECT_API_URL): without it each
    run starts and migrates an ephemeral server of its own, about 11 s apiece on 2 cores."""
    from edgeslim.registry.server import free_port

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect")), "PREFECT_UI_ENABLED": "false"}
    env.update({f"PREFECT_SERVER_SERVICES_{name.upper()}_ENABLED": "false" for name in PREFECT_SERVICES_OFF})
    log = tmp_path_factory.mktemp("prefect-log") / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + PREFECT_START_S
    while not healthy(f"{api}/health"):
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"prefect server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api
    yield api
    if before is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = before
    os.killpg(server.pid, signal.SIGTERM)


def prefect_session() -> requests.Session:
    """Prefect's API answers 503 while its sqlite database is busy (with its services on), as its own client
    expects: retry those, as that client does."""
    session = requests.Session()
    retry = Retry(total=8, backoff_factor=0.5, status_forcelist=[HTTPStatus.SERVICE_UNAVAILABLE], allowed_methods=None)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def healthy(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def run_cli(
    *args: str, env_extra: dict[str, str] | None = None, timeout: float = 900, ephemeral: bool = False
) -> subprocess.CompletedProcess:
    """Run the real ``edgeslim`` console script in a subprocess, reporting to the session's Prefect server
    once ``prefect_api`` is up (``ephemeral``: on a Prefect ephemeral server of its own, a user's default)."""
    env = {**os.environ, **(env_extra or {})}
    if ephemeral:
        env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "edgeslim.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``edgeslim: error:`` line, the last line on stderr (Prefect's shutdown logs nothing after
    it), and no traceback wall."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("edgeslim: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert [line for line in result.stderr.splitlines() if line.strip()][-1] == errors[0], result.stderr[-3000:]
    return errors[0]


def _seed_dir() -> Path:
    return Path(os.environ[SEED_ENV])


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or the one process without xdist) names the folder where tests/champion_seed.py
    trains the run's champion; xdist workers inherit it through the environment."""
    if not hasattr(config, "workerinput"):
        os.environ[SEED_ENV] = tempfile.mkdtemp(prefix="edgeslim-champion-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or SEED_ENV not in os.environ:
        return
    seed = _seed_dir()
    pid = seed / "pid"
    if pid.exists() and not (seed / "rc").exists():  # interrupted while training
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid.read_text()), signal.SIGTERM)
    shutil.rmtree(seed, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order and group the work for pytest-xdist (``--dist loadgroup``, queue kept in this order).

    A test module is one unit (its module fixtures are built once), except that the tests of the
    session's demo run (``published``) form one unit, so that one worker runs the demo, and a test
    marked ``own_unit`` (a whole flow of its own) is a unit by itself, so that both workers share them. Modules that
    need no champion come first: they keep both workers busy while the champion trains. Among the rest,
    the demo's unit and then the modules marked ``long`` go first, so that neither ends the run alone."""
    champion_modules = {item.path for item in items if "champion" in item.fixturenames}
    long_modules = {item.path for item in items if item.get_closest_marker("long")}
    for item in items:
        unit = item.nodeid if item.get_closest_marker("own_unit") else item.path.name
        item.add_marker(pytest.mark.xdist_group("published" if "published" in item.fixturenames else unit))
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda it: (it.path in champion_modules, "published" not in it.fixturenames, it.path not in long_modules, order[id(it)]))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start training the champion in the background as soon as any selected test needs it (once per run:
    the first worker to get here starts it, under a lock)."""
    if not any("champion" in item.fixturenames for item in session.items):
        return
    seed = _seed_dir()
    with (seed / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (seed / "pid").exists():
            # A script's sys.path starts at tests/: the repo goes on it too, for the helpers tests share with benchmarks/.
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "champion_seed.py"), str(seed)], cwd=REPO, env=env, start_new_session=True
            )
            (seed / "pid").write_text(f"{proc.pid}\n")


@pytest.fixture(scope="session")
def champion(session_server: SessionServer, prefect_api: str) -> str:  # later CLI runs report to prefect_api
    """The tiny baseline, trained and registered once per run by the real CLI (tests/champion_seed.py),
    in this process's server: it restarts over a copy of the seed's store. Returns the server URL."""
    seed = _seed_dir()
    deadline = time.monotonic() + SEED_TIMEOUT_S
    while not (seed / "rc").exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the champion was not trained within {SEED_TIMEOUT_S} s; see {seed / 'seed.log'}")
        time.sleep(SEED_POLL_S)
    log = (seed / "seed.log").read_text()
    assert (seed / "rc").read_text().strip() == "0", log[-3000:]
    assert "@ champion (trained)" in log, log[-3000:]
    session_server.restore(seed / "store")
    return session_server.url


@pytest.fixture(scope="session")
def published(champion: str, params_file: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """`edgeslim demo` once per session against the trained champion: the CLI result and its report.json.

    With its local fleet on, this is the suite's one flow run through every stage, from pull to a device
    taking the model (the other flow runs skip pruning or paging to keep CI short). The report gains
    ``aliases_after``: the registry's aliases read right after the run, since later tests (in whatever
    order a pytest-xdist worker runs its files) publish and move them again."""
    import json

    from mlflow import MlflowClient

    result = run_cli(
        "demo",
        "--params",
        str(params_file),
        "-S",
        "fleet.demo.enabled=true",
        *OPENVINO_TARGET,
        *SEARCH,
        env_extra={"MLFLOW_TRACKING_URI": champion},
        ephemeral=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(Path(result.stdout.strip().splitlines()[-1]).read_text())
    client = MlflowClient(champion, champion)
    report["aliases_after"] = {name: dict(client.get_registered_model(name).aliases) for name in ("pcb-detector", "pcb-detector-edge")}
    return result, report


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny yolov8 in ultralytics' checkpoint layout, next to a few real images (data/)."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from edgeslim.config import load_params
    from edgeslim.data.images import preprocess
    from edgeslim.data.synthetic import generate_dataset
    from edgeslim.models.arch import write_arch_yaml
    from edgeslim.models.checkpoint import save_checkpoint

    tmp = tmp_path_factory.mktemp("tiny")
    imgsz = 128
    p = load_params(
        REPO / "params.yaml", ["dataset.splits={train: 4, val: 8, calib_pool: 8}", "dataset.image_size=160", "dataset.object_size=[16,48]"]
    )
    data = generate_dataset(p.dataset, tmp / "data", progress=False)
    model = DetectionModel(str(write_arch_yaml(p.baseline, len(p.dataset.classes), tmp)), verbose=False)
    model.names = dict(enumerate(p.dataset.classes))
    model.args = {"imgsz": imgsz}
    model.train()  # give BatchNorm non-trivial running statistics so fusion has something to fold
    for img in sorted((data.root / "images" / "val").glob("*.jpg")):
        model(torch.from_numpy(preprocess(img, imgsz)))
    return save_checkpoint(model.eval(), {"train_args": {"imgsz": imgsz}}, tmp / "tiny.pt")
