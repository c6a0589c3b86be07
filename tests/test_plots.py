"""The Pareto plot stays readable when artifacts of one run sit close together."""

from __future__ import annotations

import itertools

from edgeslim.plots import Point, pareto_figure


def test_labels_of_points_that_lie_close_together_do_not_overlap():
    # What a real run looks like: the fused checkpoint beside its source, the FP32 ONNX beside the
    # finetuned checkpoint, the INT8 model beside the previous candidate.
    points = [
        Point("baseline", 0.25, 2.00, 700_000),
        Point("fused", 0.25, 1.98, 690_000),
        Point("finetuned", 0.27, 1.31, 400_000),
        Point("onnx-fp32", 0.27, 1.30, 390_000),
        Point("onnx-int8", 0.265, 1.40, 150_000),
    ]
    fig = pareto_figure(points, "accuracy vs latency", reference=Point("previous candidate", 0.265, 1.40, 150_000))
    renderer = fig.canvas.get_renderer()
    labels = [t for t in fig.axes[0].texts]
    assert len(labels) == len(points) + 1
    boxes = [t.get_window_extent(renderer) for t in labels]
    overlapping = [(a.get_text(), b.get_text()) for (a, ba), (b, bb) in itertools.combinations(zip(labels, boxes), 2) if ba.overlaps(bb)]
    assert overlapping == []
