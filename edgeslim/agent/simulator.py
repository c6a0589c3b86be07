"""A fleet in one process: many edge agents, each with its own state folder, on a few MQTT connections.

For tests and benchmarks of staged rollouts at fleet scale. Each simulated device runs the real
agent code path (``Updater.offer``: verify, download from S3 over HTTP, install, swap, health check
with the golden set, status) on its own ``ModelStore``; the simulator only multiplexes: devices share
a few broker connections and a thread pool, where a real fleet has one process and one connection
per device (so no per-device last will here: a silent device simply says nothing).

Faults are drawn deterministically (a hash of the device id) in the fractions asked for:

- ``wrong``: the device's runtime computes wrong outputs (each output shifted by 5% of its largest
  magnitude) for the models named by ``--fault-for``;
- ``smoke``: its runtime fails to run those models;
- ``silent``: it never answers a manifest for those models;
- ``slow``: every download runs at ``--slow-bps`` bytes per second.

Without ``--fault-for``, ``wrong``, ``smoke`` and ``silent`` apply to every model.

    python -m edgeslim.agent.simulator --devices 1000 --root /tmp/fleet --trusted-keys keys/ \\
        -S fleet.mqtt.port=1883 --fault wrong=0.3 --fault-for <sha256 of the new model>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeslim.agent import ir_archive
from edgeslim.agent.config import AgentConfig
from edgeslim.agent.smoke import device_session
from edgeslim.agent.state import ModelStore
from edgeslim.agent.status import StatusReporter
from edgeslim.agent.updater import Updater
from edgeslim.config import DEFAULT_PARAMS, FleetAgentParams, Params, load_params
from edgeslim.fleet import mqtt as mq
from edgeslim.fleet.signing import load_public_keys
from edgeslim.fleet.topics import device_manifest_topic, manifest_topic, status_topic

WRONG, SMOKE, SILENT, SLOW = "wrong", "smoke", "silent", "slow"
FAULTS = (WRONG, SMOKE, SILENT, SLOW)
WRONG_SHIFT = 0.05  # a wrong runtime's error: 5% of each output's largest magnitude
READY = "simulator ready"
POLL_S = 0.2
STOP_S = 60  # a stop waits for the manifests in hand to finish
KIB = 1024


def assign_faults(devices: list[str], fractions: dict[str, float], seed: str) -> dict[str, str]:
    """Device → fault, exactly ``ceil(fraction × devices)`` of each, the devices picked by hash."""
    order = sorted(devices, key=lambda d: hashlib.sha256(f"{seed}/{d}".encode()).hexdigest())
    out: dict[str, str] = {}
    start = 0
    for fault in FAULTS:
        count = math.ceil(fractions.get(fault, 0.0) * len(devices))
        out.update(dict.fromkeys(order[start : start + count], fault))
        start += count
    return out


class _WrongOutputs:
    """A session whose outputs are shifted: what a broken kernel or runtime build does."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def run(self, names: Any, feeds: dict) -> list[np.ndarray]:
        return [o + WRONG_SHIFT * float(np.max(np.abs(o), initial=1.0)) for o in self.session.run(names, feeds)]


@dataclass
class SimDevice:
    cfg: AgentConfig
    fault: str | None
    fault_for: frozenset[str]
    store: ModelStore
    updater: Updater | None = None

    def __post_init__(self) -> None:
        self.inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.scheduled = False

    def hit(self, sha256: str | None) -> bool:
        return self.fault is not None and (not self.fault_for or sha256 in self.fault_for)

    def runtime(self, path: Path, fmt: str) -> Any:
        pending = self.store.pending.sha256 if self.store.pending else None
        if self.fault == SMOKE and self.hit(pending):
            raise RuntimeError("simulated fault: this device's runtime cannot run the model")
        session = device_session(path, fmt, threads=1)  # many devices share few cores
        return _WrongOutputs(session) if self.fault == WRONG and self.hit(pending) else session

    def ignores(self, envelope: bytes) -> bool:
        """A silent device says nothing about a manifest for the models its fault is for."""
        if self.fault != SILENT:
            return False
        if not self.fault_for:
            return True
        try:
            shas = {a.get("sha256") for a in json.loads(envelope)["manifest"]["artifacts"]}
        except (ValueError, KeyError, TypeError):
            return False
        return bool(shas & self.fault_for)


class Simulator:
    def __init__(self, p: Params, root: Path, trusted: Path, group: str, count: int, prefix: str, options: argparse.Namespace) -> None:
        self.p, self.group = p, group
        keys = load_public_keys(trusted)
        names = [f"{prefix}-{i:04d}" for i in range(count)]
        faults = assign_faults(names, options.faults, options.seed)
        slow = p.fleet.agent.model_copy(update={"rate_limit_bps": options.slow_bps})
        self.pool = ThreadPoolExecutor(options.workers, thread_name_prefix="device")
        self.devices: dict[str, SimDevice] = {}
        self.links: list[Any] = []
        self.handled = 0
        for name in names:
            knobs: FleetAgentParams = slow if faults.get(name) == SLOW else p.fleet.agent
            cfg = AgentConfig(name, group, root / name, trusted, knobs, p.fleet.mqtt, None, None, None, p.fleet.webhook.secret_env, False)
            device = SimDevice(cfg, faults.get(name), frozenset(options.fault_for), ModelStore(cfg.state_dir))
            device.store.recover()
            self.devices[name] = device
        by_link = [names[i :: options.connections] for i in range(options.connections)]
        for index, members in enumerate(by_link):
            link = self._connect(index, members)
            for name in members:
                device = self.devices[name]
                report = StatusReporter(name, group, self._publisher(link, name), echo=False)
                device.updater = Updater(device.cfg, device.store, keys, report, self._log(name), runtime=device.runtime)
        self.faults = faults

    def _log(self, name: str) -> Callable[[str], None]:
        def log(message: str) -> None:
            print(f"[sim {name}] {message}", file=sys.stderr, flush=True)

        return log

    def _publisher(self, link: Any, name: str) -> Callable[[bytes], None]:
        topic, qos = status_topic(self.p.fleet.mqtt.topic_prefix, self.group, name), self.p.fleet.mqtt.qos

        def publish(message: bytes) -> None:
            link.publish(topic, message, qos=qos, retain=True)

        return publish

    def _connect(self, index: int, members: list[str]) -> Any:
        cfg, prefix = self.p.fleet.mqtt, self.p.fleet.mqtt.topic_prefix
        group_topic = manifest_topic(prefix, self.group)
        routes = {device_manifest_topic(prefix, self.group, name): name for name in members}
        subscribed = threading.Event()
        client = mq.make_client(f"edgeslim-sim-{index}")

        def on_message(_c, _u, msg) -> None:  # noqa: ANN001 (paho callback)
            if not msg.payload:
                return
            for name in members if msg.topic == group_topic else [routes.get(msg.topic)]:
                if name:
                    self._deliver(self.devices[name], msg.payload)

        client.on_message = on_message
        client.on_subscribe = lambda *_args: subscribed.set()
        mq.connect(client, cfg.host, cfg.port, cfg.keepalive_s, cfg.timeout_s)
        topics: list[tuple[str, int]] = [(group_topic, cfg.qos), *((topic, cfg.qos) for topic in routes)]
        client.subscribe(topics)
        if not subscribed.wait(cfg.timeout_s * 4):
            raise mq.ConnectFailed(f"broker {cfg.host}:{cfg.port} did not acknowledge the subscriptions")
        self.links.append(client)
        return client

    def _deliver(self, device: SimDevice, envelope: bytes) -> None:
        """One message at a time per device, in arrival order; many devices at once on the pool."""
        device.inbox.put(envelope)
        with device.lock:
            if device.scheduled:
                return
            device.scheduled = True
        self.pool.submit(self._drain, device)

    def _drain(self, device: SimDevice) -> None:
        assert device.updater is not None
        while True:
            try:
                envelope = device.inbox.get_nowait()
            except queue.Empty:
                with device.lock:
                    if device.inbox.empty():
                        device.scheduled = False
                        return
                continue
            if not device.ignores(envelope):
                device.updater.offer(envelope)
                self.handled += 1

    def announce(self) -> None:
        for device in self.devices.values():
            assert device.updater is not None
            device.updater.announce()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)
        for client in self.links:
            client.disconnect()
            client.loop_stop()


def device_state(state_dir: Path) -> dict[str, Any]:
    """What a device runs now: its state.json's active entry and the sha256 of the file ``current`` points at."""
    state = json.loads((state_dir / "state.json").read_text()) if (state_dir / "state.json").exists() else {}
    current = state_dir / "current"
    return {
        "active": state.get("active"),
        "pending": state.get("pending"),
        "current_sha256": ir_archive.content_sha256(current.resolve()) if current.exists() else None,
    }


class SimulatorProcess:
    """``python -m edgeslim.agent.simulator`` as a subprocess (tests, benchmarks): started, ready, stopped.

    Stopped with SIGTERM, it writes ``summary.json`` (peak memory, manifests handled) beside its log."""

    def __init__(self, folder: Path, devices: int, trusted_keys: Path, params_file: Path, overrides: list[str], *extra: str) -> None:
        self.devices, self.root = devices, folder / "devices"
        self.log, self.summary = folder / "simulator.log", folder / "summary.json"
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "edgeslim.agent.simulator", "--devices", str(devices), "--root", str(self.root),
               "--trusted-keys", str(trusted_keys), "--params", str(params_file), *(a for o in overrides for a in ("-S", o)),
               "--summary", str(self.summary), *extra]  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while READY not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fleet simulator did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(POLL_S)

    def names(self, prefix: str = "sim") -> list[str]:
        return [f"{prefix}-{i:04d}" for i in range(self.devices)]

    def current(self) -> dict[str, str | None]:
        """Device → sha256 of the file its ``current`` link points at (None: no model)."""
        return {name: device_state(self.root / name)["current_sha256"] for name in self.names()}

    def stop(self) -> dict[str, Any]:
        """SIGTERM, wait, and the summary it wrote ({} when it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return json.loads(self.summary.read_text()) if self.summary.exists() else {}


def _peak_rss_kib() -> int:
    """This process's own high-water RSS (VmHWM). Not getrusage's ru_maxrss: Linux carries that over from
    the parent through fork and exec, so a simulator started by a big process would report the parent's."""
    status = Path("/proc/self/status")
    for line in status.read_text().splitlines() if status.exists() else []:
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best figure there is


def _fault(text: str) -> tuple[str, float]:
    name, _, share = text.partition("=")
    if name not in FAULTS:
        raise argparse.ArgumentTypeError(f"fault {name!r} is not one of {', '.join(FAULTS)}")
    try:
        value = float(share)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fault {text!r}: the share must be a number in [0, 1]") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"fault {text!r}: the share must be in [0, 1]")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgeslim.agent.simulator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, required=True, help="how many simulated devices")
    parser.add_argument("--root", type=Path, required=True, help="a state folder per device is made under it")
    parser.add_argument("--trusted-keys", type=Path, required=True, help="public key file or folder of <key id>.pub")
    parser.add_argument("--group", help="device group (default: fleet.group)")
    parser.add_argument("--prefix", default="sim", help="device ids are <prefix>-0000, <prefix>-0001, ...")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file: fleet.mqtt, fleet.agent (default: %(default)s)")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one param (repeatable)")
    parser.add_argument("--fault", type=_fault, action="append", default=[], metavar="KIND=SHARE", help=f"one of {', '.join(FAULTS)}")
    parser.add_argument("--fault-for", action="append", default=[], metavar="SHA256", help="the model files the faults hit (repeatable)")
    parser.add_argument("--slow-bps", type=int, default=64 * KIB, help="download rate of the slow devices (bytes/s)")
    parser.add_argument("--seed", default="edgeslim-sim", help="which devices get which fault")
    parser.add_argument("--connections", type=int, default=4, help="MQTT connections the devices share")
    parser.add_argument("--workers", type=int, default=8, help="devices handling a manifest at the same time")
    parser.add_argument("--summary", type=Path, help="write peak memory and counts here (JSON) when stopped")
    args = parser.parse_args(argv)
    args.faults = dict(args.fault)
    p = load_params(args.params, args.set)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sim = Simulator(p, args.root, args.trusted_keys, args.group or p.fleet.group, args.devices, args.prefix, args)
    sim.announce()
    counts = {f: sum(1 for v in sim.faults.values() if v == f) for f in FAULTS}
    print(f"{READY}: {args.devices} devices, faults {counts}, pid {os.getpid()}", flush=True)
    stop.wait()
    sim.close()
    if args.summary:
        peak_kib = _peak_rss_kib()
        args.summary.write_text(
            json.dumps({"devices": args.devices, "peak_rss_mib": round(peak_kib / KIB, 1), "handled": sim.handled, "faults": counts})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
