"""Does occlusion point at the digit? IoU of the top-20% occlusion region with the ink on MNIST test digits.

Run:
    python -m experiments.ink_overlap --config configs/ink_overlap.py
Another window, e.g.:
    python -m experiments.ink_overlap --config configs/ink_overlap.py --config.occlusion.window=6
"""

from __future__ import annotations

import dataclasses

from jaxfool.data import DataConfig
from jaxfool.explain import OcclusionConfig
from jaxfool.train import TrainConfig


@dataclasses.dataclass
class Config:
    """The ink-overlap measurement.

    Attributes:
        workdir: the run folder is ``workdir/ink_overlap/<run_name or timestamp>``; the trained CNN is cached
            in ``workdir/models`` (shared with the other MNIST experiments).
        run_name: name of the run folder (default: a timestamp).
        data: where MNIST comes from.
        train: how the CNN is trained if no cached checkpoint matches.
        num_images: test digits explained (their predicted class), taken evenly from every class.
        fraction: share of pixels in the top region of each heatmap.
        ink_threshold: ink is brighter than this fraction of the pixel range.
        occlusion: occlusion settings; a black window on MNIST's black background.
        other_baselines: further occluding values measured in the same run (0.5: mid-gray).
        seed: seeds the random maps.
    """

    workdir: str = "runs"
    run_name: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    num_images: int = 100
    fraction: float = 0.2
    ink_threshold: float = 0.5
    occlusion: OcclusionConfig = dataclasses.field(
        default_factory=lambda: OcclusionConfig(window=4, stride=1, baseline=0.0, batch_size=128))
    other_baselines: tuple[float, ...] = (0.5,)
    seed: int = 0

    def validate(self) -> None:
        if self.num_images < 1 or not 0 < self.fraction <= 1 or not 0 <= self.ink_threshold < 1:
            raise ValueError("num_images must be >= 1, fraction in (0, 1] and ink_threshold in [0, 1)")


def get_config() -> Config:
    return Config()
