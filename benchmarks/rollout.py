"""``python -m benchmarks.rollout``: a staged rollout to 1,000 simulated devices, clean and with faults.

Everything real on loopback: an `mlflow server`, mosquitto, a moto S3 server, and the fleet simulator
(``edgeslim.agent.simulator``, one process, the real agent code path per device, each with its own
state folder). Three versions of a small ONNX model (``benchmarks/tiny_onnx.py``, ``--model-kib`` of
weights) are registered. Every device first gets v1 (a page to the whole group at once). Then:

1. **clean**: v2 in three stages (canary, wave, all) with soak 0; a few devices have slow links.
2. **faulty**: v3, which 30% of devices compute wrongly (their golden-set check fails), 2% cannot
   run (smoke test) and 1% never answer. The canary aborts and the fleet is rolled back to v2.

Reported: time to complete the clean rollout; time from the first failed report to the abort and to
the last device's report on the rollback manifest; MQTT messages per device (manifests sent plus
statuses received, over the devices in the rollout); the simulator's peak memory; and the devices
left without a working model (``current`` missing, unconfirmed, or not the file of v1 or v2; must be
0). Writes ``benchmarks/results/<name>.{json,md}`` and ``<name>.png`` (the stages over time). Run it
on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow

from benchmarks.paths import REPO, RESULTS_DIR, results_main
from benchmarks.tiny_onnx import register_tiny_versions
from edgeslim.agent.simulator import SimulatorProcess, device_state
from edgeslim.config import DEFAULT_PARAMS, Params, load_params
from edgeslim.digest import file_sha256
from edgeslim.fleet.local import LocalService, loopback_overrides, start_broker, start_s3
from edgeslim.fleet.page import page_version
from edgeslim.fleet.rollout import StatusWatch
from edgeslim.fleet.signing import PRIVATE_KEY_FILE, generate_keypair
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.server import start_server, stop_server

EDGE = "rollout-bench-edge"
GROUP = "bench"
KIB = 1024
START_S = 600
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
FAULTS = ["--fault", "wrong=0.3", "--fault", "smoke=0.02", "--fault", "silent=0.01", "--fault", "slow=0.02"]
STAGES = (
    "fleet.rollout.stages=["
    "{name: canary, percent: 5, min_devices: 10, soak_s: 0, success: 0.9, abort: 0.1, min_reports: 10},"
    " {name: wave, percent: 25, min_devices: 1, soak_s: 0, success: 0.9, abort: 0.1, min_reports: 20},"
    " {name: all, percent: 100, min_devices: 1, soak_s: 0, success: 0.9, abort: 0.1, min_reports: 50}]"
)
KNOBS = [
    "fleet.rollout.rate_per_min=60000",
    "fleet.rollout.report_timeout_s=120",
    "fleet.rollout.control_poll_s=1",
    "fleet.rollout.wait_s=600",
    "fleet.mqtt.timeout_s=30",
    "fleet.agent.download_retries=5",
    "fleet.agent.retry_backoff_s=0.2",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rollout", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="rollout", help="result name (default: %(default)s)")
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--model-kib", type=int, default=64, help="weights per model file (KiB)")
    parser.add_argument("--workers", type=int, default=8, help="simulated devices handling a manifest at once")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    return parser


@contextmanager
def _services(folder: Path) -> Iterator[tuple[str, LocalService, LocalService, Path]]:
    for key, value in S3_ENV.items():
        os.environ.setdefault(key, value)
    with ExitStack() as stack:
        server = start_server(folder / "mlflow", "127.0.0.1", 0, timeout_s=120, detach=True)
        stack.callback(stop_server, folder / "mlflow")
        broker = start_broker(folder / "broker")
        stack.callback(broker.stop)
        s3 = start_s3(folder / "s3")
        stack.callback(s3.stop)
        generate_keypair(folder / "keys")
        yield server.url, broker, s3, folder / "keys"


def _register(tracking_uri: str, folder: Path, model_kib: int) -> dict[str, Path]:
    client = reg.connect(tracking_uri)
    mlflow.set_experiment("rollout-bench")
    return register_tiny_versions(client, EDGE, {"1": 31, "2": 32, "3": 33}, folder, model_kib * KIB)


def _wait_roster(recorder: StatusWatch, count: int) -> None:
    deadline = time.monotonic() + START_S
    while len(recorder.snapshot()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(recorder.snapshot())} of {count} devices announced themselves")
        time.sleep(0.5)


def _rollout(tracking_uri: str, p: Params, version: str, folder: Path, recorder: StatusWatch) -> dict[str, Any]:
    """Page ``version`` in stages; the outcome, with every status on its sequences as ``recorder`` saw them arrive."""
    start, index = time.monotonic(), len(recorder.history)
    outcome = page_version(tracking_uri, p, EDGE, version, folder / f"page-v{version}")
    staged = outcome["staged"]
    ours = {staged["sequence"], *staged["rollback_sequences"].values()}
    events = [(round(t - start, 3), e) for t, e in list(recorder.history)[index:] if e.get("sequence") in ours]
    devices = sum(len(s["devices"]) for s in staged["stages"])
    return {
        "version": version,
        "state": staged["state"],
        "reason": staged["reason"],
        "page_wall_s": round(time.monotonic() - start, 3),
        "timings": staged["timings"],
        "messages": staged["messages"],
        "devices_told": devices,
        "messages_per_device": round((staged["messages"]["sent"] + staged["messages"]["received"]) / max(devices, 1), 2),
        "stages": [
            {k: s[k] for k in ("name", "verdict", "told_s", "settled_s", "golden_error_max", "latency_ms_median")}
            | {"devices": len(s["devices"]), "active": len(s["updated"]), "failed": len(s["failed"]), "silent": len(s["silent"])}
            for s in staged["stages"]
        ],
        "rolled_back": len(staged["rolled_back"]),
        "not_rolled_back": len(staged["not_rolled_back"]),
        "_events": events,
        "_stage_of": {d: s["name"] for s in staged["stages"] for d in s["devices"]},
        "_sequence": staged["sequence"],
        "_rollback": sorted(staged["rollback_sequences"].values()),
    }


def _without_working_model(fleet: SimulatorProcess, good: set[str]) -> int:
    bad = 0
    for name in fleet.names():
        state = device_state(fleet.root / name)
        if state["pending"] or state["current_sha256"] not in good or (state["active"] or {}).get("sha256") != state["current_sha256"]:
            bad += 1
    return bad


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="edgeslim-rollout-bench-") as tmp, _services(Path(tmp)) as (uri, broker, s3, keys):
        folder = Path(tmp)
        files = _register(uri, folder / "models", args.model_kib)
        shas = {v: file_sha256(f) for v, f in files.items()}
        model_bytes = files["1"].stat().st_size
        overrides = [*loopback_overrides(broker, s3, keys / PRIVATE_KEY_FILE), f"fleet.group={GROUP}", "fleet.channels=[mqtt]", *KNOBS]
        p_all = load_params(args.params, overrides)
        p_staged = load_params(args.params, [*overrides, STAGES])
        fleet = SimulatorProcess(folder / "fleet", args.devices, keys, args.params, overrides, *FAULTS, "--fault-for", shas["3"],
                                 "--workers", str(args.workers))  # fmt: skip
        try:
            with StatusWatch(p_all.fleet.mqtt, GROUP) as recorder:  # its own subscription: the figure's clock
                fleet.wait_ready(START_S)
                _wait_roster(recorder, args.devices)
                seed_start = time.monotonic()
                seeded = page_version(uri, p_all, EDGE, "1", folder / "seed")["rollout"]
                seed_s = round(time.monotonic() - seed_start, 3)
                clean = _rollout(uri, p_staged, "2", folder, recorder)
                clean_left = _without_working_model(fleet, {shas["2"]})
                faulty = _rollout(uri, p_staged, "3", folder, recorder)
                faulty_left = _without_working_model(fleet, {shas["1"], shas["2"]})
        finally:
            summary = fleet.stop()
    figure = _plot(clean, faulty, RESULTS_DIR / f"{args.name}.png")
    return {
        "devices": args.devices,
        "stages": [s.name for s in p_staged.fleet.rollout.stages],
        "complete_s": clean["timings"]["complete_s"],
        "abort_s": faulty["timings"]["abort_s"],
        "rollback_s": faulty["timings"]["rollback_s"],
        "messages_per_device": clean["messages_per_device"],
        "peak_rss_mib": summary.get("peak_rss_mib"),
        "devices_without_working_model": clean_left + faulty_left,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}",
        "settings": {
            "model_bytes": model_bytes,
            "simulator_workers": args.workers,
            "faults_in_v3": " ".join(FAULTS[1::2]),
            "plan": STAGES.partition("=")[2],
            "knobs": KNOBS,
        },
        "seed": {"wall_s": seed_s, "updated": len(seeded["updated"]) if seeded else 0},
        "clean": {k: v for k, v in clean.items() if not k.startswith("_")} | {"devices_without_working_model": clean_left},
        "faulty": {k: v for k, v in faulty.items() if not k.startswith("_")} | {"devices_without_working_model": faulty_left},
        "simulator": summary,
        "figure": str(figure.relative_to(REPO)),
    }


def _plot(clean: dict, faulty: dict, out: Path) -> Path:
    """Cumulative active devices per stage over time (clean), and failed / rolled back over time (faulty)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name in dict.fromkeys(clean["_stage_of"].values()):
        times = sorted(
            t
            for t, e in clean["_events"]
            if e["state"] == "active" and e.get("sequence") == clean["_sequence"] and clean["_stage_of"].get(e["device"]) == name
        )
        left.step(times, range(1, len(times) + 1), where="post", label=f"{name} ({len(times)} active)")
    left.set(
        title=f"clean rollout of v2: {clean['devices_told']} devices, soak 0",
        xlabel="seconds since the page started",
        ylabel="devices active on v2",
    )
    left.legend(loc="lower right")
    curves = (
        ("failed on v3", lambda e: e.get("sequence") == faulty["_sequence"] and e["state"] in ("rolled-back", "failed")),
        ("active on v3", lambda e: e.get("sequence") == faulty["_sequence"] and e["state"] == "active"),
        ("back on v2 (rollback manifest)", lambda e: e.get("sequence") in faulty["_rollback"] and e["state"] == "active"),
    )
    for label, match in curves:
        times = sorted(t for t, e in faulty["_events"] if match(e))
        right.step(times, range(1, len(times) + 1), where="post", label=f"{label}: {len(times)}")
    right.set(title=f"v3, 30% computing wrong outputs: {faulty['state']}", xlabel="seconds since the page started", ylabel="devices")
    right.legend(loc="center right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def markdown(result: dict) -> str:
    lines = [
        f"# Staged rollout to {result['devices']} simulated devices ({result['when']})",
        "",
        f"{result['machine']}; model file {result['settings']['model_bytes']} bytes; simulator workers {result['settings']['simulator_workers']}; "
        f"plan {result['settings']['plan']}; faults for v3: {result['settings']['faults_in_v3']}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| clean 3-stage rollout, soak 0: complete | {result['complete_s']} s |",
        f"| faulty rollout: first failed report → abort | {result['abort_s']} s |",
        f"| faulty rollout: first failed report → last device on the rollback manifest | {result['rollback_s']} s |",
        f"| MQTT messages per device (clean: manifests sent + statuses received) | {result['messages_per_device']} |",
        f"| simulator peak RSS | {result['peak_rss_mib']} MiB |",
        f"| devices left without a working model | {result['devices_without_working_model']} |",
        "",
        "| rollout | stage | devices | active | failed | silent | verdict | told at s | judged at s | golden error max | median latency ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("clean", "faulty"):
        for s in result[key]["stages"]:
            lines.append(
                f"| {key} (v{result[key]['version']}) | {s['name']} | {s['devices']} | {s['active']} | {s['failed']} | {s['silent']} | "
                f"{s['verdict']} | {s['told_s']} | {s['settled_s']} | {s['golden_error_max']} | {s['latency_ms_median']} |"
            )
    faulty = result["faulty"]
    lines += [
        "",
        f"Faulty rollout: {faulty['state']}: {faulty['reason']}. Rolled back {faulty['rolled_back']}, not confirmed {faulty['not_rolled_back']}.",
        f"Seeding v1 to all devices at once took {result['seed']['wall_s']} s.",
        "",
        f"![stages over time]({Path(result['figure']).name})",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return results_main("python -m benchmarks.rollout", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
