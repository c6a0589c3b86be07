"""Typed, validated view of params.yaml — the one home of every knob.

Why pydantic with ``extra="forbid"``: a typo in params.yaml (``min_map_ratoi``) must fail loudly
instead of silently falling back to a default and publishing a model under the wrong gate.
Overrides use the ``section.key=value`` syntax of ``dvc exp run -S`` so the same strings work in
both tools; values are parsed as YAML, so ``-S quantize.op_types=[Conv,MatMul]`` works.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeslim.data.tasks import Metric, Task
from edgeslim.errors import EdgeslimError

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class ConfigError(EdgeslimError):
    """params.yaml or an override is wrong; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered_pair(name: str, pair: tuple[float, float]) -> None:
    if pair[0] > pair[1]:
        raise ValueError(f"{name} must be [low, high], got {list(pair)}")


class DatasetSplits(_Section):
    train: PositiveInt
    val: PositiveInt
    calib_pool: PositiveInt


class DatasetParams(_Section):
    data_yaml: Path | None  # your own ultralytics data.yaml; None = the embedded synthetic set
    seed: int
    image_size: Annotated[int, Field(ge=64, le=2048)]
    classes: Annotated[list[str], Field(min_length=1)]
    splits: DatasetSplits
    dense_fraction: Fraction
    sparse_objects: tuple[PositiveInt, PositiveInt]
    dense_objects: tuple[PositiveInt, PositiveInt]
    object_size: tuple[PositiveInt, PositiveInt]
    brightness: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]
    blur_fraction: Fraction
    occlusion_fraction: Fraction
    noise_sigma: Annotated[float, Field(ge=0)]
    defect_class: str  # segment: the defect class its masks add after the components (solder bridges)
    defect_fraction: Fraction  # segment: share of the parts with pin rows that carry a bridge
    defect_size: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]  # segment: a bridge's radius, px
    max_angle: Annotated[float, Field(ge=0, le=90)]  # obb: parts are turned by up to this many degrees either way

    @model_validator(mode="after")
    def _ranges(self) -> "DatasetParams":
        if self.defect_class in self.classes:
            raise ValueError(f"defect_class {self.defect_class!r} is already one of the classes")
        for name in ("sparse_objects", "dense_objects", "object_size", "brightness", "defect_size"):
            _ordered_pair(name, getattr(self, name))
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be unique")
        if self.object_size[1] * 2 > self.image_size:
            raise ValueError("object_size upper bound must be at most half of image_size")
        return self


class BaselineParams(_Section):
    task: Task  # the ultralytics task trained, and the labels the embedded set is written with
    arch: str
    aux_loss_weight: Annotated[float, Field(ge=0)]  # dual-head (PGI) archs: weight of the auxiliary head's loss
    scale: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], PositiveInt]
    imgsz: Annotated[int, Field(ge=32, multiple_of=32)]
    epochs: PositiveInt
    batch: PositiveInt
    lr0: Annotated[float, Field(gt=0)]
    warmup_epochs: Annotated[float, Field(ge=0)]  # ultralytics' warmup (at least 100 iterations unless 0)
    patience: PositiveInt
    seed: int
    workers: Annotated[int, Field(ge=0)]

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        """Reject an unknown family here, naming the accepted ones, not as a traceback at training time."""
        from edgeslim.errors import ArchError
        from edgeslim.models.arch import family_yaml  # lazy: arch.py imports this module for its type hints

        try:
            family_yaml(arch)
        except ArchError as exc:
            raise ValueError(str(exc)) from None
        return arch

    @model_validator(mode="after")
    def _task_head(self) -> "BaselineParams":
        """A task the family has no ultralytics head yaml for (yolov9t-seg, say) is refused here."""
        from edgeslim.errors import ArchError
        from edgeslim.models.arch import task_yaml

        try:
            task_yaml(self.arch, self.task)
        except ArchError as exc:
            raise ValueError(str(exc)) from None
        return self


class ConvergenceParams(_Section):
    """When the source's own training history (ultralytics' results.csv) counts as a plateau."""

    window: PositiveInt  # the last epochs looked at
    min_gain: Annotated[float, Field(ge=0)]  # their best val mAP50-95 may beat the earlier best by at most this


Activation = Literal["keep", "relu", "hardswish"]


class CompressParams(_Section):
    """The source model being compressed: a user's own, or the embedded baseline."""

    imgsz: Annotated[int, Field(ge=32)] | None  # None: the checkpoint's own training size (train_args.imgsz)
    source: str | None  # the model compressed when none is named (None: the flow's <model_name>@<source_alias>, DVC's baseline)
    convergence: ConvergenceParams
    activation: Activation  # the student's SiLU swapped (after pruning, before the finetune the teacher guides)
    input_size: Annotated[int, Field(ge=32)] | None  # the compressed model's input (None: imgsz); the source is scored at imgsz


class MlflowParams(_Section):
    tracking_uri: str | None
    host: str
    port: Annotated[int, Field(ge=0, le=65535)]
    experiment: str
    source_alias: str
    edge_suffix: Annotated[str, Field(min_length=1)]
    edge_alias: str
    production_alias: str
    startup_timeout_s: Annotated[float, Field(gt=0)]
    artifacts_destination: str | None
    lock_ttl_s: Annotated[float, Field(gt=0)]
    lock_timeout_s: Annotated[float, Field(gt=0)]
    lock_poll_s: Annotated[float, Field(gt=0)]
    http_retries: Annotated[int, Field(ge=0)]
    http_backoff_factor: Annotated[int, Field(ge=0)]  # MLflow reads it as an int


_PREFECT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


class DaskParams(_Section):
    enabled: bool  # independent work inside a step (INT8 sensitivity probes, artifact scoring) as Dask-run tasks
    address: str | None  # a running Dask scheduler (tcp://host:8786); None: a LocalCluster for each fan-out
    n_workers: PositiveInt  # LocalCluster worker processes
    threads_per_worker: PositiveInt
    min_items: Annotated[int, Field(ge=2)]  # fewer items run in the step's own process (a cluster costs its start)


class PrefectParams(_Section):
    ephemeral_startup_timeout_s: PositiveInt  # Prefect's default (20 s) is too short on a loaded 2-core runner
    cpu_pool: Annotated[str, Field(pattern=_PREFECT_NAME)]  # the work pool the deployments run on
    gpu_pool: Annotated[str, Field(pattern=_PREFECT_NAME)]  # the work pool of the heavy steps
    code_dir_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]  # env var: a worker's checkout of this repo
    compress_many_deployment: Annotated[str, Field(pattern=_PREFECT_NAME)]
    concurrency_limit: Annotated[str, Field(pattern=_PREFECT_NAME)]  # global concurrency limit on compress-many's runs
    max_concurrent: PositiveInt
    task_retries: Annotated[int, Field(ge=0)]  # further tries of a registry/S3 task after a transient error
    task_retry_delay_s: Annotated[float, Field(ge=0)]
    heartbeat_s: Annotated[int, Field(ge=30)]  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the deployments' runs (Prefect's minimum: 30)
    unresponsive_after_s: PositiveInt  # no heartbeat for this long: the automation `edgeslim deploy` creates marks the run Crashed
    dask: DaskParams

    @model_validator(mode="after")
    def _window_spans_missed_beats(self) -> PrefectParams:
        # a run whose heartbeat is late once (a loaded machine) must not be taken for dead
        if self.unresponsive_after_s < 2 * self.heartbeat_s:
            raise ValueError(f"unresponsive_after_s ({self.unresponsive_after_s}) must be at least twice heartbeat_s ({self.heartbeat_s})")
        return self


class FuseParams(_Section):
    equivalence_images: PositiveInt
    max_rel_l2: Annotated[float, Field(ge=0)]
    max_rel_abs: Annotated[float, Field(ge=0)]
    onnx_max_rel_l2: Annotated[float, Field(ge=0)]  # ONNX Runtime FP32 vs the torch model it was exported from
    onnx_max_rel_abs: Annotated[float, Field(ge=0)]


class ExportParams(_Section):
    opset: Annotated[int, Field(ge=11)]


class FinetuneParams(_Section):
    epochs: Annotated[int, Field(ge=0)]  # final finetune after the last pruning round (0: export the pruned model untrained)
    round_epochs: PositiveInt  # finetune between iterative pruning rounds
    optimizer: Literal["SGD", "AdamW", "Adam"]
    lr0: Annotated[float, Field(gt=0)]
    warmup_epochs: Annotated[float, Field(ge=0)]
    patience: PositiveInt  # epochs without val-fitness gain before stopping early


class SparseTrainingParams(_Section):
    enabled: bool
    epochs: PositiveInt
    l1_reg: Annotated[float, Field(gt=0)]  # λ of the L1 penalty on BatchNorm gammas


class DistillParams(_Section):
    """The unpruned (fused) model teaches the pruned one during the final finetune (edgeslim.prune.distill)."""

    enabled: bool
    head_weight: Annotated[float, Field(ge=0)]  # detect-head outputs: class BCE + DFL KL against the teacher's
    feature_weight: Annotated[float, Field(ge=0)]  # neck features (ultralytics' ``dis``): score-weighted L2, 0 = off
    temperature: Annotated[float, Field(gt=0)]  # softens the DFL distributions the box term compares


class PruneParams(_Section):
    enabled: bool
    importance: Literal["bn_scale", "l1", "l2", "random"]
    target_macs_reduction: Annotated[float, Field(gt=0, lt=1)]
    ratio_shallow: Annotated[float, Field(ge=0, lt=1)]  # channel ratio cap at the first layer
    ratio_deep: Annotated[float, Field(ge=0, lt=1)]  # ... rising linearly to this at the last layer
    steps: PositiveInt  # pruning increments per round; stops at the first one reaching the target
    rounds: PositiveInt  # prune → finetune rounds, each reaching its share of the target
    round_to: PositiveInt  # kept channel counts are multiples of this
    policy: Literal["depth", "latency"]  # what the per-layer caps rise with: depth, or each layer's measured ONNX Runtime ms
    target_latency_ratio: Annotated[float, Field(gt=0, lt=1)] | None  # budget mode (None: target_macs_reduction)
    latency_runs: PositiveInt  # timed calls per side when profiling, and per block of a budget check
    latency_rounds: PositiveInt  # blocks per budget check, the two models called in turn
    rewrite_max_rel_l2: Annotated[float, Field(ge=0)]  # split-free rewrite must be this equivalent
    sparse: SparseTrainingParams
    finetune: FinetuneParams
    distill: DistillParams

    @model_validator(mode="after")
    def _shallow_le_deep(self) -> "PruneParams":
        if self.ratio_shallow > self.ratio_deep:
            raise ValueError("ratio_shallow must not exceed ratio_deep (shallow layers are pruned less)")
        if self.target_latency_ratio is not None and self.rounds != 1:
            raise ValueError("target_latency_ratio (budget mode) prunes in one round: set prune.rounds to 1")
        return self


class CalibrationParams(_Section):
    method: Literal["curated", "random"]
    num_images: PositiveInt
    strata_quantiles: tuple[Annotated[float, Field(gt=0, lt=1)], Annotated[float, Field(gt=0, lt=1)]]
    min_per_stratum: Annotated[int, Field(ge=0)]
    pred_conf: Annotated[float, Field(gt=0, lt=1)]
    pred_iou: Annotated[float, Field(gt=0, lt=1)]
    seed: int

    @model_validator(mode="after")
    def _quantiles(self) -> "CalibrationParams":
        if self.strata_quantiles[0] >= self.strata_quantiles[1]:
            raise ValueError(f"strata_quantiles must be [low, high] with low < high, got {list(self.strata_quantiles)}")
        return self


class FallbackParams(_Section):
    enabled: bool
    sensitivity_images: PositiveInt
    conf: Annotated[float, Field(gt=0, lt=1)]
    step: PositiveInt
    max_float_layers: Annotated[int, Field(ge=0)]


class TensorRTParams(_Section):
    enabled: bool
    head_precision: Literal["fp16", "fp32"]
    workspace_mib: PositiveInt


class OpenVinoParams(_Section):
    """NNCF INT8 of the OpenVINO IR (format openvino-int8)."""

    method: Literal["ptq", "accuracy_control"]  # ptq: the ONNX INT8's float layers kept float; accuracy_control: NNCF's own search
    subset_size: PositiveInt  # calibration images NNCF reads (at most the calibration set)
    max_drop: Annotated[float, Field(gt=0, lt=1)]  # accuracy_control: relative mAP drop it may accept
    max_float_layers: PositiveInt  # accuracy_control: layers it may revert to float


class QuantizeParams(_Section):
    format: Literal["qdq"]
    per_channel: bool
    method: Literal["minmax", "entropy", "percentile"]
    activation_type: Literal["quint8", "qint8"]
    weight_type: Literal["quint8", "qint8"]
    reduce_range: bool
    op_types: list[str]  # empty: every op type ONNX Runtime can quantize
    keep_float: Literal["decode", "head", "none"]
    fallback: FallbackParams
    tensorrt: TensorRTParams
    openvino: OpenVinoParams


class EvaluateParams(_Section):
    batch: PositiveInt
    conf: Annotated[float, Field(gt=0, lt=1)]
    iou: Annotated[float, Field(gt=0, lt=1)]
    latency_runs: PositiveInt
    latency_warmup: Annotated[int, Field(ge=0)]
    threads: PositiveInt
    control: bool  # also train the equal-budget control (the unpruned source finetuned like the pruned model)


ArtifactFormat = Literal[
    "onnx-int8", "onnx-fp32", "openvino-fp32", "openvino-bf16", "openvino-int8", "tensorrt"
]  # edgeslim.runtime.formats
AUTO_TARGET = "auto"  # target.name: the profile this machine's CPU flags match (edgeslim.runtime.cpu)


class TargetParams(_Section):
    """The edge hardware a run compresses for: which formats the edge version holds, best first."""

    name: str  # a profile, or "auto": the one this machine's CPU flags match
    measure: bool  # time the gated formats and order them by latency even where the machine is not of the target's class
    rounds: PositiveInt  # paired blocks (of evaluate.latency_runs calls each) the formats are ordered by
    profiles: dict[str, Annotated[list[ArtifactFormat], Field(min_length=1)]]

    @model_validator(mode="after")
    def _known(self) -> "TargetParams":
        if self.name != AUTO_TARGET and self.name not in self.profiles:
            raise ValueError(f"target.name {self.name!r} is not a profile or {AUTO_TARGET}; known: {', '.join(self.profiles)}")
        for profile, formats in self.profiles.items():
            if len(set(formats)) != len(formats):
                raise ValueError(f"target.profiles.{profile} lists a format twice")
        return self

    @property
    def profile(self) -> str:
        """The profile this run compresses for (``auto`` resolved on this machine)."""
        return profile_of(self.name)

    @property
    def formats(self) -> list[str]:
        return formats_of(self.name, self.profiles)


def profile_of(name: str) -> str:
    """``target.name`` resolved: a profile, or for ``auto`` the one this machine's CPU flags match."""
    if name != AUTO_TARGET:
        return name
    from edgeslim.runtime.cpu import machine_profile

    return machine_profile()


def formats_of(name: str, profiles: dict[str, list[ArtifactFormat]]) -> list[str]:
    """The candidate formats of ``target.name`` (a step that reads only target.name and target.profiles calls this)."""
    return list(profiles[profile_of(name)])


class SearchParams(_Section):
    """The search for the fastest variant that passes (edgeslim/search): its space, goal and cost."""

    enabled: bool
    prune_levels: Annotated[list[Annotated[float, Field(gt=0, lt=1)]], Field(min_length=1)]
    activations: Annotated[list[Activation], Field(min_length=1)]
    input_scales: Annotated[
        list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1)
    ]  # of the source's size, rounded down to its stride
    budget: Annotated[float, Field(gt=0)] | None  # latency ratio to the source's own export on the runtime; None: fastest that passes
    rungs: Annotated[list[PositiveInt], Field(min_length=1)]  # short-finetune epochs per rung of successive halving
    keep: Annotated[float, Field(gt=0, le=1)]  # share of a rung's survivors, fastest first, that go on
    slack: Fraction  # a short finetune may score this much under gates.min_map_ratio and go on
    timing_images: PositiveInt  # val images the untrained INT8 builds are calibrated on (for their speed only)
    max_minutes: Annotated[float, Field(gt=0)]


class BootstrapParams(_Section):
    """The mAP ratio's interval: paired resamples of the val images (evaluate/bootstrap.py)."""

    samples: PositiveInt
    level: Annotated[float, Field(gt=0, lt=1)]
    seed: int


class GateParams(_Section):
    min_map_ratio: Annotated[float, Field(gt=0)]
    reference: Literal["baseline", "control"]  # what every mAP ratio (and the gate) is a share of
    confidence: Literal["point", "lower"]  # point: the ratio itself must clear min_map_ratio; lower: its interval's low end
    metric: Metric | None  # which of the validator's mAP50-95 the gates compare; None: the source task's primary
    bootstrap: BootstrapParams


FleetChannel = Literal["mqtt", "webhook", "iot_jobs"]
Seconds = Annotated[float, Field(gt=0)]
MAX_PRESIGN_S = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week


class FleetS3Params(_Section):
    endpoint_url: str | None
    bucket: Annotated[str, Field(min_length=3)]
    prefix: str
    region: str
    create_bucket: bool
    presign_ttl_s: Annotated[int, Field(gt=0, le=MAX_PRESIGN_S)]


class FleetMqttParams(_Section):
    host: str
    port: Annotated[int, Field(gt=0, le=65535)]
    topic_prefix: Annotated[str, Field(pattern=r"^[^#+]+$")]  # MQTT wildcards cannot be part of a topic name
    qos: Literal[0, 1, 2]
    keepalive_s: PositiveInt
    timeout_s: Seconds


class FleetWebhookParams(_Section):
    urls: list[str]
    secret_env: Annotated[str, Field(min_length=1)]
    timeout_s: Seconds


class FleetIotJobsParams(_Section):
    region: str
    endpoint_url: str | None
    targets: list[str]


ALL_PERCENT = 100.0
DeviceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]  # an MQTT topic level


class RolloutStage(_Section):
    """One stage of a staged rollout: who gets the version, and what stops the next stage."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]  # a tag key part and a Prefect artifact key part
    percent: Annotated[float, Field(gt=0, le=100)]  # cumulative share of the eligible devices
    min_devices: PositiveInt  # the stage holds at least this many devices (a canary of 5% of 20 is still 2)
    soak_s: Annotated[float, Field(ge=0)]  # watch the updated devices this long before the next stage
    success: Fraction  # share of the stage's devices that must end up active
    abort: Fraction  # share of failed (and, at the stage's end, silent) devices that aborts
    min_reports: PositiveInt  # the abort share is judged only once this many devices reported


class FleetRolloutParams(_Section):
    wait_s: Annotated[float, Field(ge=0)]
    devices: list[str]
    stages: list[RolloutStage]
    rate_per_min: Annotated[float, Field(gt=0)]
    report_timeout_s: Seconds
    control_poll_s: Seconds

    @model_validator(mode="after")
    def _stages_grow(self) -> "FleetRolloutParams":
        percents = [s.percent for s in self.stages]
        if percents != sorted(set(percents)):
            raise ValueError("stages must have growing percent")
        if self.stages and self.stages[-1].percent != ALL_PERCENT:
            raise ValueError("the last stage must reach percent 100, or some devices would never be updated")
        if len({s.name for s in self.stages}) != len(self.stages):
            raise ValueError("stage names must be unique")
        return self


class FleetGoldenParams(_Section):
    images: Annotated[int, Field(ge=0)]
    tolerance: Annotated[float, Field(gt=0)]


class FleetAgentParams(_Section):
    formats: Annotated[list[ArtifactFormat], Field(min_length=1)]
    max_artifact_bytes: PositiveInt
    chunk_bytes: PositiveInt
    rate_limit_bps: Annotated[int, Field(ge=0)]
    download_retries: PositiveInt
    retry_backoff_s: Annotated[float, Field(ge=0)]
    http_timeout_s: Seconds
    poll_s: Seconds
    smoke_max_latency_ms: Annotated[float, Field(gt=0)] | None


class FleetDemoParams(_Section):
    enabled: bool
    device: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class FleetParams(_Section):
    enabled: bool
    group: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]  # a topic level and a tag key part
    channels: Annotated[list[FleetChannel], Field(min_length=1)]
    signing_key: Path | None
    manifest_ttl_s: Annotated[int, Field(gt=0)]
    notify_retries: PositiveInt
    notify_backoff_s: Annotated[float, Field(ge=0)]
    s3: FleetS3Params
    mqtt: FleetMqttParams
    webhook: FleetWebhookParams
    iot_jobs: FleetIotJobsParams
    rollout: FleetRolloutParams
    hold: list[DeviceId]
    pin: dict[DeviceId, str]
    golden: FleetGoldenParams
    agent: FleetAgentParams
    demo: FleetDemoParams

    @model_validator(mode="after")
    def _channels_configured(self) -> "FleetParams":
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must be unique")
        if "webhook" in self.channels and not self.webhook.urls:
            raise ValueError("channel webhook needs webhook.urls")
        if "iot_jobs" in self.channels and not self.iot_jobs.targets:
            raise ValueError("channel iot_jobs needs iot_jobs.targets")
        if self.rollout.stages and self.channels != ["mqtt"]:
            raise ValueError(
                "a staged rollout (rollout.stages) addresses devices one by one, which only the mqtt channel does: channels must be [mqtt]"
            )
        return self


class WebhookReceiverParams(_Section):
    """`edgeslim webhook serve`: MLflow registry webhooks that start the compress deployment."""

    host: str
    port: Annotated[int, Field(ge=0, le=65535)]
    path: Annotated[str, Field(pattern=r"^/")]
    public_url: str | None  # what MLflow POSTs to (`webhook create`); null = http://host:port/path
    name: Annotated[str, Field(min_length=1)]  # the MLflow webhook's name
    secret_env: Annotated[str, Field(min_length=1)]  # env var holding the HMAC secret shared with MLflow
    max_age_s: Seconds  # timestamp window: older (or further in the future) deliveries are refused
    models: list[str]  # registered models whose promotions start a run; [] = [model_name]
    aliases: Annotated[list[str], Field(min_length=1)]  # aliases whose setting counts as a promotion
    dedup_db: Path | None  # delivery ids seen; null = <workspace>/triggers/deliveries.sqlite


class RetrainParams(_Section):
    """The scheduled retrain flow: finetune the champion on the newest dataset, promote if better."""

    cron: Annotated[str, Field(min_length=1)]
    timezone: str
    margin: float  # new mAP50-95 must exceed the champion's (same held-out split) by more than this
    on_promote: Literal["webhook", "deployment", "none"]  # who starts compress after `champion` moved
    finetune: FinetuneParams

    @model_validator(mode="after")
    def _trains(self) -> "RetrainParams":
        if self.finetune.epochs == 0:
            raise ValueError("finetune.epochs must be at least 1: a retrain trains")
        return self


class TriggersParams(_Section):
    compress_deployment: Annotated[str, Field(min_length=1)]  # deployment names `edgeslim serve` creates
    retrain_deployment: Annotated[str, Field(min_length=1)]
    webhook: WebhookReceiverParams
    retrain: RetrainParams


class TrainedReferenceParams(_Section):
    """A reference model the benchmark trains once on the embedded set, until val fitness plateaus."""

    max_epochs: PositiveInt  # the cap; early stopping ends it sooner
    patience: PositiveInt  # epochs without val-fitness gain before it stops


class StockReferenceParams(TrainedReferenceParams):
    """A stock ultralytics size (family and scale as ultralytics' own yaml has them) at its own image size."""

    arch: str
    scale: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], PositiveInt]
    imgsz: Annotated[int, Field(ge=32, multiple_of=32)]
    render_size: Annotated[int, Field(ge=64, le=2048)]  # its dataset's dataset.image_size (objects scaled alike)
    finetune_epochs: Annotated[int, Field(ge=0)]  # its compress run's prune.finetune.epochs


class DistillBenchmarkParams(_Section):
    """``python -m benchmarks.distill``: one pruned copy of the converged reference, finetuned alike four ways."""

    cut: Annotated[float, Field(gt=0, lt=1)]  # prune.target_macs_reduction of the one pruned copy
    activation: Activation  # compress.activation of that copy
    epochs: PositiveInt  # every arm's finetune (prune.finetune's recipe otherwise)
    head_weight: Annotated[float, Field(gt=0)]  # prune.distill.head_weight where the head term is on
    feature_weight: Annotated[float, Field(gt=0)]  # prune.distill.feature_weight (ultralytics' ``dis``) where the feature term is on


class BenchmarkParams(_Section):
    splits: DatasetSplits  # the references' dataset.splits
    converged: TrainedReferenceParams  # the embedded baseline's architecture, trained to convergence
    converged_model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    yolov8n: StockReferenceParams  # the stock-size subject
    latency_budget: Annotated[float, Field(gt=0, lt=1)]  # the ablation's budget-mode row
    latency_caps: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]]  # its ratio_shallow, ratio_deep
    floor_width: Annotated[float, Field(gt=0, le=1)]  # the channel-floor row's width multiple
    frontier_macs: list[Annotated[float, Field(gt=0, lt=1)]]  # the frontier's other prune.target_macs_reduction values
    pairs: PositiveInt  # blocks per latency ratio (A and B called in turn)
    pair_runs: PositiveInt  # timed calls per side per block
    pair_processes: PositiveInt  # probe processes the blocks are spread over
    distill: DistillBenchmarkParams  # python -m benchmarks.distill: head-only against ultralytics' feature distillation


class PlacementParams(_Section):
    """Where one step runs: None = in its flow run's process; a work pool = as a sub-flow run of the
    ``edgeslim-step/<pool>`` deployment there, its files moved through MLflow by sha256."""

    work_pool: Annotated[str, Field(pattern=_PREFECT_NAME)] | None


class StepsParams(_Section):
    """The steps that may run elsewhere: the heavy ones, which want a GPU machine."""

    finetune: PlacementParams
    tensorrt: PlacementParams

    def pools(self) -> dict[str, str]:
        """Step name → work pool, for the steps placed on one."""
        return {name: placement.work_pool for name, placement in self if placement.work_pool}


class Params(_Section):
    workspace: Path
    model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    dataset: DatasetParams
    baseline: BaselineParams
    compress: CompressParams
    mlflow: MlflowParams
    prefect: PrefectParams
    fuse: FuseParams
    export: ExportParams
    prune: PruneParams
    calibration: CalibrationParams
    quantize: QuantizeParams
    evaluate: EvaluateParams
    gates: GateParams
    search: SearchParams
    target: TargetParams
    fleet: FleetParams
    triggers: TriggersParams
    steps: StepsParams
    benchmark: BenchmarkParams

    @model_validator(mode="after")
    def _reference_is_computed(self) -> "Params":
        if self.gates.reference == "control" and not self.evaluate.control:
            raise ValueError("gates.reference is control, but evaluate.control is false: the control would not be trained")
        if self.compress.activation != "keep" and not self.prune.enabled:
            raise ValueError(
                f"compress.activation is {self.compress.activation}, but prune.enabled is false: no finetune would recover the swap"
            )
        return self

    def section_hash(self, *sections: str) -> str:
        """Stable short hash of the named sections (all when none): keys runs and cache reuse."""
        data = self.model_dump(mode="json")
        picked = {s: data[s] for s in sections} if sections else data
        return digest(picked)


def section_digest(name: str, section: BaseModel) -> str:
    """``Params.section_hash(name)`` from the section alone (a step sees only its own sections)."""
    return digest({name: section.model_dump(mode="json")})


def digest(data: dict[str, Any]) -> str:
    """Stable short hash of JSON-able data (cache keys)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


DEFAULT_PARAMS = Path("params.yaml")


def _apply_override(data: dict[str, Any], override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r} is not of the form section.key=value")
    _set(data, key.strip(), _override_value(raw), f"override {override!r}")


def _set(data: dict[str, Any], key: str, value: Any, what: str) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            raise ConfigError(f"{what}: {part!r} is not a section of params")
        node = child
    if parts[-1] not in node:
        raise ConfigError(f"{what}: unknown key {key!r}")
    node[parts[-1]] = value


def bound(p: Params, values: dict[str, Any]) -> Params:
    """``p`` with the dotted keys of ``values`` set and validated again: what an earlier step chose for
    the steps after it (the search's variant), applied the way every runner applies it."""
    data = p.model_dump(mode="json")
    for key, value in values.items():
        _set(data, key, value, f"bound {key}")
    return Params.model_validate(data)


def _override_value(raw: str) -> Any:
    """A YAML scalar/collection as `dvc exp run -S` reads it; text that isn't YAML (a cron line such as
    ``*/5 * * * *`` reads as an alias) stays a string, and validation then says whether it fits."""
    if not raw.strip():
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def load_params(path: Path | str = DEFAULT_PARAMS, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Read params.yaml, apply ``section.key=value`` overrides, validate, and return typed params."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"params file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"params file {path} must hold a mapping of sections")
    for override in overrides:
        _apply_override(data, override)
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid params in {path}: {problems}") from None
