"""The benchmark's method, not its figures: paired A/B ratios, their interval, the self-check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.measure import Timing
from benchmarks.paired import bootstrap_ci, paired_ratio, self_check


def test_bootstrap_interval_brackets_the_median_and_is_reproducible():
    ratios = [0.98, 1.01, 1.0, 0.99, 1.02, 1.0, 0.97, 1.03]
    low, high = bootstrap_ci(ratios)
    assert low <= float(np.median(ratios)) <= high and (low, high) == bootstrap_ci(ratios)
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)


def test_self_check_flags_a_pair_outside_the_tolerance():
    assert self_check({"ratio": 1.02})["ok"] and not self_check({"ratio": 1.05})["ok"]
    assert "cannot be trusted" in self_check({"ratio": 0.9})["verdict"]


def test_paired_probes_alternate_and_time_both_sides(tmp_path: Path, tiny_checkpoint: Path):
    """An identical pair in a real probe process: every block timed, ratios positive, interval around the median."""
    from edgeslim.data.images import list_images, preprocess_batch
    from edgeslim.export.onnx_export import export_onnx

    onnx = export_onnx(tiny_checkpoint, 64, 17, tmp_path / "tiny.onnx")
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, preprocess_batch(list_images(tiny_checkpoint.parent / "data" / "images" / "val")[:1], 64))
    pair = paired_ratio(
        onnx, onnx, inputs, Timing(threads=1, runs=3, warmup=1, rounds=1, timeout_s=120), pairs=3, processes=2, b_graph="basic"
    )
    assert pair["pairs"] == 4 and len(pair["ratios"]) == 4 and pair["processes"] == 2 and all(r > 0 for r in pair["ratios"])
    assert pair["ci95"][0] <= pair["ratio"] <= pair["ci95"][1] and pair["a_ms_median"] > 0 and pair["b_ms_median"] > 0
    with pytest.raises(RuntimeError):
        paired_ratio(tmp_path / "missing.onnx", onnx, inputs, Timing(1, 3, 1, 1, 120), pairs=1, processes=1)


def test_interleaved_ratio_calls_the_two_in_turn_and_flips_the_order_every_call():
    """The one speed comparison (pruning's budget, the benchmark): A B, B A, ... per block, after warm-up."""
    from edgeslim.runtime.timing import interleaved_ratio

    calls: list[str] = []
    ratio = interleaved_ratio(lambda: calls.append("a"), lambda: calls.append("b"), calls=4, blocks=3, warmup=1)
    assert "".join(calls) == "ab" + "abbaabba" * 3
    assert len(ratio.block_ratios) == 3 and ratio.calls_per_block == 4 and ratio.ratio > 0 and ratio.a_ms >= 0


def test_frontier_names_the_fastest_row_that_passed_every_gate(tmp_path: Path):
    """A faster row that failed a gate is not what would ship; the run's own params come first."""
    from dataclasses import dataclass

    from benchmarks.ablation import Context, frontier_rows
    from benchmarks.library_run import LibraryRun
    from edgeslim.report import StageResult

    @dataclass(frozen=True)
    class Known(Context):  # the paired method has its own tests: here each file's ratio is known
        speed: tuple[tuple[str, float], ...] = ()

        def ratio(self, a: Path, b: Path, b_graph: str = "all") -> dict:
            return {"ratio": dict(self.speed)[b.name], "ci95": [0.0, 0.0], "b_ms_median": 1.0}

    def run(name: str, fp32_map: float, passed: bool) -> LibraryRun:
        (tmp_path / name).write_bytes(b"onnx")
        stages = {s: StageResult(name=s, artifact=name, map50_95=m) for s, m in (("baseline", 0.5), ("onnx-fp32", fp32_map))}
        return LibraryRun(*(tmp_path / name,) * 5, calib_images=[], pruned=True, stages=stages, gates={"map_ratio_fp32": passed})

    default, cut_20, cut_30 = run("default.onnx", 0.4, False), run("20.onnx", 0.49, True), run("30.onnx", 0.48, True)
    speed = (("default.onnx", 0.6), ("20.onnx", 0.9), ("30.onnx", 0.8))
    ctx = Known(tmp_path / "ref.onnx", tmp_path / "in.npy", Timing(1, 1, 1, 1, 1), 1, 1, None, speed)  # type: ignore[arg-type]
    frontier = frontier_rows([("20%", cut_20), ("30%", cut_30), ("budget", "unmeetable")], default, ctx)
    assert [r["row"] for r in frontier["rows"]] == ["the run's own params", "20%", "30%", "budget"]
    assert frontier["fastest_passing"] == "30%" and frontier["rows"][2]["map_ratio_vs_converged"] == pytest.approx(0.96)
    assert frontier["rows"][3] == {"row": "budget", "absent": "unmeetable"}


def test_a_kept_reference_names_no_folder_of_this_machine(tiny_checkpoint: Path, tmp_path: Path):
    """benchmarks/references keeps checkpoints in git: ultralytics' train args, the model's args and the
    path a resume loaded it from (``pt_path``) come out relative to the repository."""
    import torch

    from benchmarks.paths import REPO
    from benchmarks.references import portable_checkpoint

    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    inside = f"{REPO}/workspace/bench/cache/references/x/train/weights/last.pt"
    ckpt["train_args"] = {"model": inside, "data": f"{REPO}/workspace/datasets/d/data.yaml", "project": str(REPO)}
    ckpt["model"].pt_path = inside
    torch.save(ckpt, tmp_path / "absolute.pt")
    kept = portable_checkpoint(tmp_path / "absolute.pt", tmp_path / "kept.pt")
    assert str(REPO).encode() not in kept.read_bytes()
    back = torch.load(kept, map_location="cpu", weights_only=False)
    assert back["model"].pt_path == "workspace/bench/cache/references/x/train/weights/last.pt" and back["train_args"]["project"] == "."
