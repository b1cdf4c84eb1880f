"""Evaluating CNN predictions on VGG16, as the study: FGSM at eps 4 (pixels in [0, 255]) with the cross-model part
(VGG16's FGSM images through ResNet101: its top-1 and Grad-CAM at conv5_block3_out beside VGG16's at block5_conv3;
`cross_model.md`), Perlin and universal perturbation noise images; occlusion with a 32-pixel mid-gray window.
ResNet101's weights: official when on disk (`python -m jaxfool.weights fetch resnet101`), else random, MEANINGLESS.

Run (official ImageNet weights; fetched once with `python -m jaxfool.weights fetch vgg16`):
    python -m experiments.evaluate_predictions --config configs/evaluate_predictions_vgg16.py
Offline, on scikit-image's sample photos, with random weights (MEANINGLESS predictions, real pipeline):
    python -m experiments.evaluate_predictions --config configs/evaluate_predictions_vgg16.py --config.weights=random
Your photos and human masks (`<photo stem>.png` each):
    ... --config.image_dir=photos/ --config.mask_dir=masks/
"""

from __future__ import annotations

from configs.evaluate_predictions import Config, NoiseConfig
from configs.evaluate_predictions import get_config as base
from jaxfool.explain import OcclusionConfig


def get_config() -> Config:
    config = base()
    config.model, config.weights, config.second_model, config.second_weights = "vgg16", "imagenet", "resnet101", "auto"
    config.num_images = 4
    config.layer = "block5_conv3"  # the study's and Grad-CAM's layer (the default would be block5_pool)
    config.fgsm_eps = 4.0
    config.occlusion = OcclusionConfig(window=32, stride=16, baseline=114.0, batch_size=16)
    config.noise = NoiseConfig(perlin_images=1, perlin_period=64.0, perlin_freq_sine=36.0, perlin_octaves=4,
                               universal_eps=10.0, universal_images=4, universal_epochs=10, universal_rel_step=0.1)
    config.panel_scale = 1
    return config
