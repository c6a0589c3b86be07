"""What ``edgeslim demo`` adds after compressing: a local fleet of one device that picks the model up.

A broker (mosquitto), an S3 API (moto server) and one real agent process start on loopback; a
throwaway signing key is made once in the git-ignored workspace; the compress flow then pages with
overrides pointing at them. If the flow found the model already published (nothing new to page),
the candidate is paged explicitly, so every demo shows a device going to ``active``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgeslim import workspace
from edgeslim.config import DEFAULT_PARAMS, Params, load_params
from edgeslim.fleet.local import HOST, LocalService, loopback_overrides, start_broker, start_s3
from edgeslim.fleet.page import page_version, raise_for_outcome
from edgeslim.fleet.signing import PRIVATE_KEY_FILE, generate_keypair

# moto accepts any credentials; real ones in the environment are left alone.
DEMO_AWS_ENV = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class DemoFleet:
    overrides: list[str] = field(default_factory=list)
    agent_log: Path | None = None
    params_file: Path = DEFAULT_PARAMS
    cli_overrides: list[str] = field(default_factory=list)

    def show(self, tracking_uri: str, out: dict) -> None:
        """Print the rollout; page the candidate first when the flow had nothing new to page."""
        if not self.overrides:
            return
        published = out.get("published") or {}
        rollout = None if published.get("reused") else out.get("details", {}).get("rollout")
        if published and rollout is None:
            p = load_params(self.params_file, [*self.cli_overrides, *self.overrides])
            rollout = page_version(tracking_uri, p, published["model"], published["version"], workspace.new_run_dir(p, "page"))
            raise_for_outcome(rollout)
        if rollout:
            head = f"fleet: {published['model']} v{published['version']} paged to group {rollout['group']} (sequence {rollout['sequence']})"
            staged, devices = rollout.get("staged"), rollout.get("rollout") or {}
            if staged:  # fleet.rollout.stages: one line for the stages
                stages = "; ".join(f"{s['name']} {len(s['updated'])}/{len(s['devices'])} active" for s in staged["stages"])
                print(f"{head}: staged rollout {staged['state']}: {stages}", file=sys.stderr)
            else:
                print(
                    f"{head}: updated {devices.get('updated')}, failed {devices.get('failed')}, silent {devices.get('silent')}",
                    file=sys.stderr,
                )
            print(f"fleet: the device's log is {self.agent_log}", file=sys.stderr)


def _keys(folder: Path) -> Path:
    """The demo's throwaway signing key (made once; the folder is git-ignored)."""
    if not (folder / PRIVATE_KEY_FILE).exists():
        generate_keypair(folder)
    return folder / PRIVATE_KEY_FILE


def agent_command(params_file: Path, overrides: list[str], device: str, state: Path, trusted_keys: Path, *extra: str) -> list[str]:
    """``edgeslim agent`` for one device, as a subprocess command line of this interpreter."""
    options = [a for o in overrides for a in ("-S", o)]
    return [sys.executable, "-m", "edgeslim.cli", "agent", "--params", str(params_file), *options, "--device", device, "--state", str(state),
            "--trusted-keys", str(trusted_keys), *extra]  # fmt: skip


def _agent(p: Params, params_file: Path, cli_overrides: list[str], broker: LocalService, folder: Path) -> subprocess.Popen:
    device = p.fleet.demo.device
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{device}.log"
    cmd = agent_command(params_file, cli_overrides, device, folder / device, folder.parent / "keys", "--broker", f"{HOST}:{broker.port}")
    with log.open("ab") as sink:
        return subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@contextmanager
def demo_fleet(p: Params, params_file: Path, cli_overrides: list[str]) -> Iterator[DemoFleet]:
    """Local broker + S3 + one agent while the block runs; empty overrides when the demo fleet is off."""
    if not p.fleet.demo.enabled:
        yield DemoFleet()
        return
    folder = workspace.root(p) / "fleet"
    key = _keys(folder / "keys")
    for name, value in DEMO_AWS_ENV.items():
        os.environ.setdefault(name, value)
    with ExitStack() as stack:
        broker = start_broker(folder / "broker")
        stack.callback(broker.stop)
        s3 = start_s3(folder / "s3")
        stack.callback(s3.stop)
        agent = _agent(p, params_file, cli_overrides, broker, folder / "devices")
        stack.callback(agent.wait)
        stack.callback(agent.terminate)  # callbacks run last-in first-out: terminate, then wait
        print(f"fleet: broker mqtt://{HOST}:{broker.port}, S3 {s3.url}, agent {p.fleet.demo.device} (pid {agent.pid})", file=sys.stderr)
        overrides = [
            *loopback_overrides(broker, s3, key),
            "fleet.channels=[mqtt]",
            f"fleet.rollout.devices=[{p.fleet.demo.device}]",  # wait for it even if it connects after paging starts
        ]
        yield DemoFleet(overrides, folder / "devices" / f"{p.fleet.demo.device}.log", params_file, cli_overrides)
