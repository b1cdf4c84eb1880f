"""Evaluating CNN predictions: occlusion vs Grad-CAM on regular inputs, then FGSM, cross-model and noise inputs.

Run (MNIST CNN, fully offline, real trained weights; a residual CNN as the second model):
    python -m experiments.evaluate_predictions --config configs/evaluate_predictions.py
VGG16 on photos (official weights): see configs/evaluate_predictions_vgg16.py.
With human attention masks (one PNG per image, same stem as the image; MNIST digits are named test<index>):
    python -m experiments.evaluate_predictions --config configs/evaluate_predictions.py --config.mask_dir=masks/
"""

from __future__ import annotations

import dataclasses
import pathlib

from configs.common import MnistBase
from jaxfool.data import DataConfig
from jaxfool.explain import OcclusionConfig
from jaxfool.train import TrainConfig

MODELS = ("mnist_cnn", "vgg16")
SECOND_MODELS = {"mnist_cnn": ("", "mnist_cnn", "mnist_resnet"), "vgg16": ("", "resnet50", "resnet101")}
WEIGHTS = ("auto", "imagenet", "random")


@dataclasses.dataclass
class NoiseConfig:
    """The raw noise inputs of the study (never seen in training).

    Attributes:
        perlin_images: how many Perlin-noise images (each from its own key).
        perlin_period: lattice period of the first octave, in pixels.
        perlin_freq_sine: frequency of the sine colour map.
        perlin_octaves: octaves of the noise.
        universal_eps: L-inf radius of the universal perturbation, in the model's pixel units.
        universal_images: images the universal perturbation is fitted on (MNIST: training digits; VGG16: the photos).
        universal_epochs: passes over them.
        universal_rel_step: step per minibatch as a fraction of ``universal_eps``.
    """

    perlin_images: int = 2
    perlin_period: float = 8.0
    perlin_freq_sine: float = 6.0
    perlin_octaves: int = 3
    universal_eps: float = 0.3
    universal_images: int = 256
    universal_epochs: int = 5
    universal_rel_step: float = 0.05

    def validate(self) -> None:
        if self.perlin_images < 0 or self.universal_images < 0 or self.universal_epochs < 1:
            raise ValueError("noise.perlin_images and noise.universal_images must be >= 0, universal_epochs >= 1")
        if self.perlin_period <= 0 or self.universal_eps <= 0 or self.perlin_octaves < 1:
            raise ValueError("noise.perlin_period and noise.universal_eps must be > 0 and perlin_octaves >= 1")


@dataclasses.dataclass
class Config(MnistBase):
    """The evaluate-predictions study (the common fields: :class:`configs.common.MnistBase`; ``seed`` seeds the
    attack, the noise and random weights; ``data`` defaults to the embedded digits, offline).

    Attributes:
        model: ``"mnist_cnn"`` (trained here or restored) or ``"vgg16"``.
        weights: VGG16 only: ``"imagenet"`` (fetched if needed), ``"auto"`` (official if on disk, else random),
            ``"random"`` (offline; MEANINGLESS predictions) or a weights file.
        image_dir: VGG16 only: a folder of photos; empty: scikit-image's sample photos.
        second_model: the cross-model comparison: MNIST: ``"mnist_resnet"``, ``"mnist_cnn"`` (another training
            seed); VGG16: ``"resnet101"`` (the study's) or ``"resnet50"``, judging VGG16's FGSM images; ``""``: none.
        second_train: MNIST only: how the second model is trained (its seed differs from ``train.seed``).
        second_weights: ResNet only: ``"auto"`` (official if on disk -- a converted checkpoint or the Keras file --
            else random, MEANINGLESS), ``"imagenet"`` (fetched if needed), ``"random"`` or a weights file.
        mask_dir: a folder of human attention masks, ``<image stem>.png`` each; empty: none.
        num_images: images explained (MNIST: test digits taken evenly from every class; VGG16: the first photos).
        layer: Grad-CAM layer; empty: the model's last spatial layer. An MNIST second model uses it too where it
            has it; a ResNet second model always its last block, ``conv5_block3_out``.
        fraction: share of pixels in the top-k region of the agreement numbers.
        pointing_tolerance: pixels of slack of the pointing game against a mask.
        occlusion: occlusion settings.
        fgsm_eps: FGSM's L-inf radius in the model's pixel units (MNIST: [0, 1]; VGG16: [0, 255], the study's 4).
        noise: Perlin and universal-perturbation inputs.
        panel_scale: magnification of the panels (28-pixel digits are small).
    """

    data: DataConfig = dataclasses.field(default_factory=lambda: DataConfig(source="embedded"))
    model: str = "mnist_cnn"
    weights: str = "imagenet"
    image_dir: str = ""
    second_model: str = "mnist_resnet"
    second_train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=5, seed=1))
    second_weights: str = "auto"
    mask_dir: str = ""
    num_images: int = 20
    layer: str = ""
    fraction: float = 0.2
    pointing_tolerance: float = 0.0
    occlusion: OcclusionConfig = dataclasses.field(
        default_factory=lambda: OcclusionConfig(window=4, stride=2, baseline=0.0, batch_size=256))
    fgsm_eps: float = 0.2
    noise: NoiseConfig = dataclasses.field(default_factory=NoiseConfig)
    panel_scale: int = 4

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r} is not one of {', '.join(MODELS)}")
        if self.second_model not in SECOND_MODELS[self.model]:
            raise ValueError(f"second_model={self.second_model!r} does not go with model={self.model!r}; "
                             f"use one of {SECOND_MODELS[self.model]}")
        for field in ("weights", "second_weights"):
            value = getattr(self, field)
            if value not in WEIGHTS and not pathlib.Path(value).exists():
                raise ValueError(f"{field}={value!r} is neither {', '.join(WEIGHTS)} nor an existing weights file")
        if self.num_images < 1 or not 0 < self.fraction <= 1 or self.pointing_tolerance < 0:
            raise ValueError("num_images must be >= 1, fraction in (0, 1] and pointing_tolerance >= 0")
        if self.fgsm_eps <= 0 or self.panel_scale < 1:
            raise ValueError("fgsm_eps must be > 0 and panel_scale >= 1")


def get_config() -> Config:
    return Config()
