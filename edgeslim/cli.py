"""``edgeslim`` command line: demo, dataset, baseline, compress, report, server.

Every command takes ``--params FILE`` and repeated ``-S section.key=value`` overrides (the syntax of
``dvc exp run -S``). Expected failures (bad params, unknown model or alias, unreachable server,
corrupt checkpoint, failed gate) end with one ``edgeslim: error: ...`` line and a non-zero exit:
2 for bad input or environment, 3 for a failed quality gate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from edgeslim.config import DEFAULT_PARAMS, Params, load_params
from edgeslim.errors import EdgeslimError, one_line
from edgeslim.prefect_logging import mute_shutdown_logs

EPILOG = """examples:
  edgeslim demo                                   # whole job on the embedded default
  edgeslim compress --model pcb-detector@champion
  edgeslim compress --model pcb-detector:3 -S gates.min_map_ratio=0.97
  edgeslim compress --model runs:/<run_id>/weights/best.pt  # what `yolo train` logged with mlflow=True
  edgeslim compress --model exported/best.onnx    # an ONNX model: calibration, INT8, evaluation, gates
  edgeslim register runs:/<run_id>/weights --name my-detector --alias champion
  edgeslim baseline -S baseline.epochs=10 --force
  edgeslim report pcb-detector-edge@candidate      # stage table + gates of what was published
  edgeslim page pcb-detector-edge@candidate        # page the fleet again (e.g. after a broker outage)
  edgeslim agent --device cam-7 --state /var/lib/edgeslim --trusted-keys /etc/edgeslim/keys
  edgeslim serve                                   # deployments compress, retrain (cron), compress-many, in this process
  edgeslim deploy && prefect worker start --pool edgeslim-cpu   # the same deployments on a work pool (README "Running on a cluster")
  edgeslim compress-many pcb-detector@champion other-detector@champion=arm64
  edgeslim webhook create --url https://hooks.example.com/mlflow/webhook && edgeslim webhook serve
environment:
  MLFLOW_TRACKING_URI   use this tracking server instead of starting a local one
  PREFECT_API_URL       use this Prefect server instead of an ephemeral one
  EDGESLIM_SIGNING_KEY  path of the Ed25519 key that signs update manifests (or fleet.signing_key)
  EDGESLIM_TRUSTED_KEYS agent: a public key file, or a folder of <key id>.pub files
  EDGESLIM_MLFLOW_WEBHOOK_SECRET  webhook: HMAC secret shared with MLflow (name: triggers.webhook.secret_env)
"""


def _tracking_uri(p: Params) -> str:
    """The configured server, or this workspace's local ``mlflow server`` (started if needed)."""
    from edgeslim import workspace
    from edgeslim.errors import RegistryError
    from edgeslim.registry.server import ensure_server, is_healthy
    from edgeslim.registry.tracking import ui_url

    uri = workspace.tracking_uri(p)
    if uri:
        if uri.startswith(("http://", "https://")) and not is_healthy(uri, timeout=5.0):
            raise RegistryError(f"MLflow tracking server {uri} is unreachable (no answer on /health)")
        return uri
    server = ensure_server(
        workspace.mlflow_root(p), p.mlflow.host, p.mlflow.port, p.mlflow.startup_timeout_s, p.mlflow.artifacts_destination
    )
    print(
        f"MLflow UI: {ui_url(server.url, 'experiments')}  (local server, pid {server.pid}; stop with `edgeslim server stop`)",
        file=sys.stderr,
    )
    return server.url


def _run_flow(flow: Callable, **kwargs: object) -> dict:
    """Run a Prefect flow; re-raise its expected failure as itself so main() prints one line."""
    from edgeslim.prefect_logging import quiet_expected_failures

    quiet_expected_failures()
    state = flow(return_state=True, **kwargs)
    if state.is_failed():
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, BaseException):
            raise exc
        raise EdgeslimError(state.message or "flow failed")
    return state.result()


def cmd_dataset(args: argparse.Namespace, p: Params) -> int:  # noqa: ARG001 (every command takes args)
    from edgeslim import workspace

    info = workspace.dataset(p)
    print(f"{info.data_yaml}  sha256 {info.sha256}")
    return 0


def cmd_baseline(args: argparse.Namespace, p: Params) -> int:
    from flows.baseline import baseline_flow

    out = _run_flow(baseline_flow, tracking_uri=_tracking_uri(p), params_file=str(args.params), overrides=args.set, force=args.force)
    print(f"{out['model']} version {out['version']} @ {p.mlflow.source_alias} ({'reused' if out['reused'] else 'trained'})")
    return 0


def cmd_compress(args: argparse.Namespace, p: Params) -> int:
    from edgeslim import workspace
    from edgeslim.dag.source import check_against_data, checked_source_facts
    from edgeslim.registry import mlflow_registry as reg
    from edgeslim.registry.references import parse_source
    from edgeslim.registry.sources import check_source

    model = args.model or p.compress.source or f"{p.model_name}@{p.mlflow.source_alias}"
    source = parse_source(model, p.mlflow.source_alias)  # bad input fails before MLflow, Prefect or a download:
    uri = _tracking_uri(p)
    check_source(reg.connect(uri), source)
    if source.file is not None:  # a local model is checked whole: layout, image sizes against its stride, task and classes
        check_against_data(checked_source_facts(source.file, p), workspace.dataset(p, progress=False), str(source.file))
    from flows.compress import compress_flow  # Prefect and the flow, once the source is known to be there

    overrides = [*args.set, *(["search.enabled=false"] if args.no_search else [])]
    out = _run_flow(compress_flow, model=model, tracking_uri=uri, params_file=str(args.params), overrides=overrides, force=args.force)
    print(out["report"])
    return 0


def cmd_demo(args: argparse.Namespace, p: Params) -> int:
    from edgeslim.fleet.demo import demo_fleet
    from edgeslim.registry.tracking import ui_url
    from flows.baseline import baseline_flow
    from flows.compress import compress_flow

    uri = _tracking_uri(p)
    _run_flow(baseline_flow, tracking_uri=uri, params_file=str(args.params), overrides=args.set)
    with demo_fleet(p, args.params, args.set) as fleet:  # local broker, S3 and one agent (fleet.demo)
        overrides = [*args.set, *fleet.overrides]
        out = _run_flow(
            compress_flow,
            model=f"{p.model_name}@{p.mlflow.source_alias}",
            tracking_uri=uri,
            params_file=str(args.params),
            overrides=overrides,
        )
        fleet.show(uri, out)
    pub = out["published"]
    page = ui_url(uri, f"models/{pub['model']}/versions/{pub['version']}")
    print(f"MLflow UI: {page}  ({pub['model']}@{pub['alias']})", file=sys.stderr)
    print(out["report"])
    return 0


def cmd_register(args: argparse.Namespace, p: Params) -> int:
    from edgeslim import workspace
    from edgeslim.data.splits import split_images
    from edgeslim.registry import mlflow_registry as reg
    from edgeslim.registry.references import parse_source
    from edgeslim.registry.register_source import register_source

    client = reg.connect(_tracking_uri(p))
    source = parse_source(args.source, p.mlflow.source_alias)
    example = split_images(workspace.dataset(p).data_yaml, "val")[0]
    dest = workspace.new_run_dir(p, "register")
    mv = register_source(client, source, args.name, args.alias, p.mlflow.experiment, dest, example)
    print(f"registered {mv.name} version {mv.version}" + (f" @ {args.alias}" if args.alias else "") + f" from {args.source}")
    return 0


def cmd_report(args: argparse.Namespace, p: Params) -> int:
    import re
    import tempfile

    from edgeslim.dag.layout import REPORT_MD
    from edgeslim.errors import RegistryError
    from edgeslim.lineage import RUN_ID_TAG
    from edgeslim.registry import mlflow_registry as reg

    client = reg.connect(_tracking_uri(p))
    if re.fullmatch(r"[0-9a-f]{32}", args.ref):
        run_id = args.ref
    else:
        mv = reg.resolve(client, reg.ModelRef.parse(args.ref, p.mlflow.edge_alias))
        run_id = mv.tags.get(RUN_ID_TAG) or ""
        if not run_id:
            raise RegistryError(f"{mv.name} version {mv.version} was not published by an edgeslim compress run")
    with tempfile.TemporaryDirectory() as tmp:
        print(reg.download_run_file(run_id, REPORT_MD, Path(tmp)).read_text(), end="")
    return 0


def cmd_server(args: argparse.Namespace, p: Params) -> int:
    from edgeslim import workspace
    from edgeslim.registry.server import running_server, stop_server

    root = workspace.mlflow_root(p)
    if args.action == "start":
        print(_tracking_uri(p))
    elif args.action == "stop":
        print("stopped" if stop_server(root) else "no local server running")
    else:
        server = running_server(root)
        print(f"running at {server.url} (pid {server.pid})" if server else "not running")
    return 0


def cmd_page(args: argparse.Namespace, p: Params) -> int:
    from edgeslim import workspace
    from edgeslim.fleet.page import page_version, raise_for_outcome
    from edgeslim.registry import mlflow_registry as reg

    uri = _tracking_uri(p)
    mv = reg.resolve(reg.connect(uri), reg.ModelRef.parse(args.ref, p.mlflow.edge_alias))
    outcome = page_version(uri, p, mv.name, str(mv.version), workspace.new_run_dir(p, "page"))
    raise_for_outcome(outcome)
    return 0


def cmd_rollout(args: argparse.Namespace, p: Params) -> int:
    from edgeslim.fleet.control import request, status_text
    from edgeslim.registry import mlflow_registry as reg

    client = reg.connect(_tracking_uri(p))
    version = reg.resolve(client, reg.ModelRef.parse(args.ref, p.mlflow.edge_alias))
    group = args.group or p.fleet.group
    print(status_text(version, group) if args.action == "status" else request(client, version, group, args.action))
    return 0


def cmd_keys(args: argparse.Namespace, p: Params) -> int:
    from edgeslim import workspace
    from edgeslim.fleet.signing import generate_keypair

    private, public = generate_keypair(args.out or workspace.root(p) / "fleet" / "keys")
    print(f"private key: {private} (keep it off devices; point fleet.signing_key or $EDGESLIM_SIGNING_KEY at it)")
    print(f"public key:  {public} (copy to devices; key id {public.stem})")
    return 0


def cmd_agent(args: argparse.Namespace, p: Params) -> int:
    import os

    from edgeslim.agent.config import AgentConfig, Endpoint
    from edgeslim.agent.runner import run

    trusted = args.trusted_keys or os.environ.get("EDGESLIM_TRUSTED_KEYS")
    if not trusted:
        raise EdgeslimError("agent needs --trusted-keys or $EDGESLIM_TRUSTED_KEYS (public key file or folder)")
    try:
        broker = None if args.no_mqtt else Endpoint.parse(args.broker or f"{p.fleet.mqtt.host}:{p.fleet.mqtt.port}")
        listen = Endpoint.parse(args.listen) if args.listen else None
    except ValueError as exc:
        raise EdgeslimError(f"agent: {exc}") from None
    cfg = AgentConfig(
        device=args.device,
        group=args.group or p.fleet.group,
        state_dir=args.state.resolve(),
        trusted_keys=Path(trusted),
        knobs=p.fleet.agent,
        mqtt=p.fleet.mqtt,
        broker=broker,
        poll_url=args.poll_url,
        listen=listen,
        webhook_secret_env=p.fleet.webhook.secret_env,
        once=args.once,
    )
    return run(cfg)


def _prefect_api() -> str:
    """Deployments and their runs must live on a Prefect server other processes can reach."""
    import os

    url = os.environ.get("PREFECT_API_URL", "")
    if not url:
        raise EdgeslimError(
            "set PREFECT_API_URL to a running Prefect server (`prefect server start`): deployments cannot live on an ephemeral one"
        )
    return url


def cmd_retrain(args: argparse.Namespace, p: Params) -> int:
    import json

    from flows.retrain import retrain_flow

    out = _run_flow(retrain_flow, tracking_uri=_tracking_uri(p), params_file=str(args.params), overrides=args.set)
    print(json.dumps(out, sort_keys=True))
    return 0


def cmd_serve(args: argparse.Namespace, p: Params) -> int:
    from flows.deployments import serve_deployments

    print(f"serving deployments on {_prefect_api()}", file=sys.stderr)
    serve_deployments(p, _tracking_uri(p), args.params, args.set)
    return 0


def cmd_webhook(args: argparse.Namespace, p: Params) -> int:
    from edgeslim.triggers import receiver

    if args.action == "serve":
        print(f"starting runs on {_prefect_api()}", file=sys.stderr)
        receiver.serve(p)
        return 0
    from edgeslim.registry import mlflow_registry as reg
    from edgeslim.triggers.mlflow_webhook import ensure_webhook

    hook = ensure_webhook(reg.connect(_tracking_uri(p)), p, receiver.secret(p), args.url)
    print(f"MLflow webhook {hook.name} ({hook.webhook_id}) -> {hook.url} on {[str(e) for e in hook.events]}")
    return 0


def cmd_stage(args: argparse.Namespace, p: Params) -> int:
    from edgeslim.dag.dvc import run_stage

    run_stage(args.stage, p)
    return 0


def _generated(args: argparse.Namespace, text: str, path: Path, source: str) -> int:
    """Print, ``--write`` or ``--check`` a file generated from ``source`` (dvc.yaml, prefect.yaml)."""
    if args.check:
        if not path.is_file() or path.read_text() != text:
            raise EdgeslimError(f"{path} does not match {source}: run `edgeslim {args.command} --write`")
        print(f"{path} matches {source}")
    elif args.write:
        path.write_text(text)
        print(f"wrote {path}")
    else:
        print(text, end="")
    return 0


def cmd_dvc_yaml(args: argparse.Namespace, p: Params) -> int:
    from edgeslim.dag.dvc import dvc_yaml

    return _generated(args, dvc_yaml(p), Path("dvc.yaml"), "the step registry")


def cmd_prefect_yaml(args: argparse.Namespace, p: Params) -> int:
    from flows.deployments import PREFECT_YAML, prefect_yaml

    return _generated(args, prefect_yaml(p), PREFECT_YAML, "the deployments (flows/deployments.py, params.yaml)")


def cmd_deploy(args: argparse.Namespace, p: Params) -> int:  # noqa: ARG001 (every command takes args)
    import subprocess

    from flows.crash_detection import NAME, ensure_crash_detection
    from flows.deployments import PREFECT_YAML, REPO, ensure_pools, prefect_yaml

    api = _prefect_api()
    if (REPO / PREFECT_YAML).read_text() != prefect_yaml(p):
        raise EdgeslimError(f"{PREFECT_YAML} does not match the deployments: run `edgeslim prefect-yaml --write` first")
    for name in ensure_pools(p):
        print(f"created process work pool {name} on {api}", file=sys.stderr)
    print(f"automation {NAME!r}: {ensure_crash_detection(p)}", file=sys.stderr)
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=REPO, check=False)
    if done.returncode:
        raise EdgeslimError(f"`prefect deploy --all` exited with {done.returncode} (its output is above)")
    return 0


def cmd_compress_many(args: argparse.Namespace, p: Params) -> int:
    from edgeslim.cluster.fanout import parse_jobs
    from flows.compress_many import compress_many_flow

    _prefect_api()
    jobs = [dict(zip(("model", "target"), pair.rsplit("=", 1), strict=False)) for pair in args.pairs]
    parse_jobs(jobs, p)  # a bad pair is refused here, before a flow run exists (the flow checks again for deployment runs)
    out = _run_flow(compress_many_flow, jobs=jobs, tracking_uri=_tracking_uri(p), params_file=str(args.params), overrides=args.set)
    print(out["report"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    common.add_argument(
        "-S",
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one param, e.g. -S gates.min_map_ratio=0.97 (repeatable; values parsed as YAML)",
    )
    parser = argparse.ArgumentParser(
        prog="edgeslim",
        description="Compress a YOLO detector from the MLflow registry (fuse, quantize, gate) and publish the edge version.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        cmd.set_defaults(func=func)
        return cmd

    add(
        "demo",
        cmd_demo,
        "run the whole job on the embedded default: dataset, baseline (reused when unchanged), compress; prints report.json's path last",
    )
    add(
        "dataset",
        cmd_dataset,
        "generate (once) the embedded synthetic dataset, or check dataset.data_yaml; prints data.yaml and its sha256",
    )
    base = add(
        "baseline",
        cmd_baseline,
        "make the dataset, train the tiny baseline and register it as <model_name>@champion (reused when data and params are unchanged)",
    )
    base.add_argument("--force", action="store_true", help="train and register a new version even if an identical champion exists")
    comp = add(
        "compress", cmd_compress, "run the compress flow on a source model and publish <model_name>-edge@candidate if every gate passes"
    )
    comp.add_argument(
        "--model",
        metavar="SOURCE",
        help="source model: NAME[@ALIAS|:VERSION], models:/NAME@ALIAS, models:/NAME/VERSION, runs:/<run_id>/<path> "
        "(e.g. ultralytics' weights/best.pt), a local .pt, or a local .onnx (then only calibration, INT8, evaluation and the "
        "gates run) (default: compress.source, else <model_name>@<mlflow.source_alias>)",
    )
    comp.add_argument(
        "--force",
        action="store_true",
        help="compress and publish again even if this source version was already published with the same params and data",
    )
    comp.add_argument(
        "--no-search",
        action="store_true",
        help="run the fixed recipe (prune.target_macs_reduction, compress.activation, compress.input_size) instead of "
        "searching for the fastest prune level x activation x input size that keeps its accuracy (same as -S search.enabled=false)",
    )
    regi = add(
        "register", cmd_register,
        "register a run artifact (ultralytics' weights/best.pt) or a local .pt as a version of NAME: logged as a model with "
        "signature and input example, tagged with its training run; the alias moves last",
    )  # fmt: skip
    regi.add_argument("source", metavar="SOURCE", help="runs:/<run_id>/<path>, a local .pt, or a registered NAME[@ALIAS|:VERSION]")
    regi.add_argument("--name", required=True, help="registered model to add the version to (created if new)")
    regi.add_argument("--alias", help="alias to move to the new version, e.g. champion (then the MLflow webhook trigger starts compress)")
    rep = add("report", cmd_report, "print the stage table and gate verdicts of a compress run (run id) or of a published edge version")
    rep.add_argument(
        "ref",
        metavar="RUN_ID|NAME[@ALIAS|:VERSION]",
        help="MLflow run id, or edge model version (bare NAME means NAME@<mlflow.edge_alias>)",
    )
    srv = add("server", cmd_server, "start, stop or show this workspace's local MLflow server")
    srv.add_argument("action", choices=["start", "stop", "status"])
    pg = add(
        "page",
        cmd_page,
        "page fleet.group with a published edge version: upload, sign, notify the channels, record the rollout; "
        "with fleet.rollout.stages, a staged rollout (canary, waves, abort thresholds, rollback) that moves @production when it completes",
    )
    pg.add_argument("ref", metavar="NAME[@ALIAS|:VERSION]", help="edge model version (bare NAME means NAME@<mlflow.edge_alias>)")
    roll = add(
        "rollout", cmd_rollout,
        "show, pause, resume or abort the staged rollout (fleet.rollout.stages) of an edge version to a device group; "
        "abort rolls the devices told so far back to the version they ran",
    )  # fmt: skip
    roll.add_argument(
        "action",
        choices=["status", "pause", "resume", "abort"],
        help="status: print the rollout's state and stages from the version's tags; pause, resume, abort: ask the running rollout",
    )
    roll.add_argument("ref", metavar="NAME[@ALIAS|:VERSION]", help="edge model version (bare NAME means NAME@<mlflow.edge_alias>)")
    roll.add_argument("--group", help="device group (default: fleet.group)")
    keys = add("keys", cmd_keys, "generate an Ed25519 signing keypair for update manifests")
    keys.add_argument("action", choices=["generate"])
    keys.add_argument("--out", type=Path, help="folder for the keypair (default: <workspace>/fleet/keys)")
    agent = add(
        "agent", cmd_agent, "run the edge agent: receive signed manifests, download, verify, smoke-test, swap, report (ONNX Runtime only)"
    )
    agent.set_defaults(needs_workspace=False)
    agent.add_argument("--device", required=True, help="this device's id (its status topic)")
    agent.add_argument("--state", type=Path, required=True, help="folder for models, downloads and state.json")
    agent.add_argument("--trusted-keys", help="public key file or folder of <key id>.pub (default: $EDGESLIM_TRUSTED_KEYS)")
    agent.add_argument("--group", help="device group (default: fleet.group)")
    agent.add_argument("--broker", metavar="HOST:PORT", help="MQTT broker (default: fleet.mqtt.host:port)")
    agent.add_argument("--no-mqtt", action="store_true", help="no broker: take manifests from --poll-url / --listen only")
    agent.add_argument("--poll-url", help="also poll this URL for the group's current manifest every fleet.agent.poll_s")
    agent.add_argument("--listen", metavar="HOST:PORT", help="also accept webhook POSTs here (HMAC key from $<fleet.webhook.secret_env>)")
    agent.add_argument("--once", action="store_true", help="with --poll-url: check once, apply, exit (0 = healthy model)")
    add(
        "retrain",
        cmd_retrain,
        "finetune <model_name>@champion on the newest dataset version, register it, move champion only if better by triggers.retrain.margin",
    )
    add(
        "serve",
        cmd_serve,
        "serve the Prefect deployments compress, retrain (cron: triggers.retrain.cron) and compress-many in this process until "
        "interrupted; needs PREFECT_API_URL",
    )
    hook = add(
        "webhook",
        cmd_webhook,
        "MLflow promotion trigger: `serve` the receiver that verifies registry webhooks and starts the compress deployment, or `create` the MLflow webhook",
    )
    hook.add_argument(
        "action",
        choices=["serve", "create"],
        help="serve: run the receiver (triggers.webhook); create: create or update the webhook in MLflow",
    )
    hook.add_argument("--url", help="create: URL MLflow posts to (default: triggers.webhook.public_url, else http://host:port/path)")
    stage = add(
        "stage",
        cmd_stage,
        "run one pipeline stage for `dvc repro` (dvc.yaml); outputs under <workspace>/dvc/, figures in <workspace>/dvc/metrics/",
    )
    stage.add_argument(
        "stage", metavar="NAME", help="a stage of dvc.yaml: a step of edgeslim/dag/registry.py (dataset, baseline, source, fuse, ...)"
    )
    many = add(
        "compress-many", cmd_compress_many,
        "compress many models at once: one run of the compress deployment per pair, executed by the workers of "
        "prefect.cpu_pool (or `edgeslim serve`), at most prefect.max_concurrent at a time; one summary table; needs PREFECT_API_URL",
    )  # fmt: skip
    many.add_argument(
        "pairs",
        nargs="+",
        metavar="REF[=TARGET]",
        help="a model reference as --model takes it, and a target.profiles name (default: target.name)",
    )
    for name, func, text, path in (
        ("dvc-yaml", cmd_dvc_yaml, "print dvc.yaml as the step registry declares it (stages, deps, params, outs)", "dvc.yaml"),
        ("prefect-yaml", cmd_prefect_yaml, "print prefect.yaml: each deployment on its work pool, run from each worker's own checkout", "prefect.yaml"),
    ):  # fmt: skip
        how = add(name, func, text).add_mutually_exclusive_group()
        how.add_argument("--write", action="store_true", help=f"write it to ./{path}")
        how.add_argument("--check", action="store_true", help=f"fail (exit 2) when ./{path} differs from it")
    add(
        "deploy", cmd_deploy,
        "create the work pools prefect.cpu_pool and prefect.gpu_pool where missing (process pools) and the automation that marks "
        "a run Crashed when its heartbeats stop (prefect.unresponsive_after_s), then `prefect deploy --all` from prefect.yaml; "
        "needs PREFECT_API_URL",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its last line (report path, or ``edgeslim: error: ...``) stays the last one printed."""
    try:
        return _main(argv)
    finally:
        mute_shutdown_logs()


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        params = load_params(args.params, args.set)
        if getattr(args, "needs_workspace", True):  # the edge agent has no workspace, MLflow or Prefect
            from edgeslim import workspace

            workspace.configure_environment(params)
        return args.func(args, params)
    except EdgeslimError as exc:
        print(one_line(str(exc)), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgeslim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
