"""The smoke test's input: a deterministic synthetic board image, generated instead of shipped.

Why generated: the device needs no image decoder and no data file, and every device feeds its model
exactly the same pixels, so a NaN or a shape error is the model's fault, not the input's.
"""

from __future__ import annotations

import numpy as np

SEED = 20261124
BOARD_RGB = (0.1, 0.45, 0.2)
PARTS = 12  # component-like rectangles on the board


def board_image(height: int, width: int, seed: int = SEED) -> np.ndarray:
    """``[1, 3, height, width]`` float32 in [0, 1]: a green board with bright parts and noise."""
    rng = np.random.default_rng(seed)
    img = np.empty((3, height, width), np.float32)
    img[:] = np.asarray(BOARD_RGB, np.float32)[:, None, None]
    for _ in range(PARTS):
        h, w = (max(1, int(s * rng.uniform(0.05, 0.2))) for s in (height, width))
        y, x = int(rng.integers(0, max(1, height - h))), int(rng.integers(0, max(1, width - w)))
        img[:, y : y + h, x : x + w] = rng.uniform(0.0, 1.0, size=(3, 1, 1))
    img += rng.normal(0.0, 0.02, size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)[None]
