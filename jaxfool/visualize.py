"""How a CNN sees the world: filter and class visualisation, images pushed to a class, fooling images.

The recipes of "How convolutional neural networks see the world" (Keras blog, VGG16), reproduced exactly:

* :func:`noise_image` -- ``(U(0, 1) - 0.5) * 20 + 128``, the gray noise every ascent starts from, as the
  network's preprocessed input (:data:`VGG_NOISE`: the blog fed it to VGG16's conv stack directly);
* :func:`rms_normalize` -- ``g / (sqrt(mean(g ** 2)) + 1e-5)``;
* :func:`deprocess_image` -- centre, divide by ``std + 1e-5``, ``x 0.1``, ``+ 0.5``, clip to ``[0, 1]``,
  ``x 255``, ``uint8``; :func:`normalize_image` is the same without the last two steps (the study's
  ``normalize_img`` for the Mona Lisa);
* filter visualisation: :func:`filter_objective` (mean activation of one channel), step 1 for 20 steps;
* class maximisation: :func:`class_objective` (softmax output of a class), step 7 for 30 steps at 224x224;
* image to target class: the class objective from a real image, step 0.01;
* fooling images (Nguyen et al. 2015): the class objective with L2 decay and periodic Gaussian blur
  (:class:`AscentConfig` ``decay``/``blur_every``), with :func:`crossing_steps` for 0.99 / 0.999 / 0.9999.

Everything runs through ONE step loop, :func:`ascend`, over ONE example; callers ``jax.vmap`` it (a whole
layer's filters or all classes as one batch, see :func:`visualize_filters` and :func:`maximize_classes`) and
``jax.jit`` it with the network and :class:`Ascent` static and :class:`AscentParams` traced (both built from
an :class:`AscentConfig` by its ``build()``). Optional, each off by default: random jitter,
scale and rotation of the image before the objective (Lucid's transformation robustness), a total-variation
penalty, and Lucid's Fourier / decorrelated-colour parameterisation (:func:`fourier_image`).

Pixel units are the network's: the study's defaults (centre 128, spread 20, step 1) are for VGG16, whose
caffe preprocessing (with ``preprocess=True``) is a channel flip and a shift, so a step in raw RGB is the same
step in the network's input space; :data:`VGG_NOISE` starts from the raw pixels that preprocess to the blog's
noise, and nothing is clipped, so the ascent is the blog's. For the MNIST CNN (pixels in ``[0, 1]``) use
:data:`MNIST_NOISE` and the step sizes documented in ``configs/see_the_world.py``.

The step loop is a ``lax.scan``, fully unrolled by default (``AscentConfig.unroll=0``). Measured on this 2-core
XLA:CPU (trained MNIST CNN, 64 conv1 filters x 20 steps as one vmapped batch): rolled loop 3.0 s per run,
fully unrolled 0.85 s (3.5x); 10 classes x 30 steps: 1.43 s rolled, 0.32 s unrolled (4.5x); an unroll factor
of 5 was as slow as the rolled loop. Convolutions inside a while-loop body are what is slow on XLA:CPU.
Unrolling costs compile time (2-6 s for 20-30 steps here, but over 4 minutes for 100 steps with blur): long
runs and large nets should set ``unroll=1`` (rolled).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxfool import imagenet, xla
from jaxfool.explain._common import check_score, class_score
from jaxfool.models.network import Network, Params, activation_shapes, forward, predict_proba

Array = jax.Array
Objective = Callable[[Array], Array]  # x [H, W, C] -> scalar


class Noise(NamedTuple):
    """Uniform noise ``(U(0, 1) - 0.5) * spread + centre``: the start of every ascent from noise.

    ``preprocessed``: the noise is the network's input after its own preprocessing (the blog fed it straight
    into Keras' VGG16, whose conv stack takes caffe-preprocessed BGR): :func:`starts_for` returns the pixels
    that preprocess to it (``imagenet.deprocess_input``; for VGG16 with ``preprocess=True`` a channel flip and
    the ImageNet mean added, so red reaches 261.7, outside ``[0, 255]``: the recipes do not clip). Networks
    without preprocessing inside take the noise as it is.
    """

    centre: float = 128.0
    spread: float = 20.0
    preprocessed: bool = False


#: The study's VGG16 start: ``128 +- 10`` in the network's preprocessed input space, as the blog fed it.
VGG_NOISE = Noise(128.0, 20.0, preprocessed=True)
#: The same gray-noise idea for pixels in [0, 1]: centre 0.5, spread 20/255 (the study's relative spread).
MNIST_NOISE = Noise(0.5, 20.0 / 255.0)


def noise_image(shape: Sequence[int], noise: Noise = VGG_NOISE, *, key: Array) -> Array:
    """Gray noise ``(U(0, 1) - 0.5) * spread + centre`` of ``shape`` (e.g. ``[H, W, C]``), float32."""
    return (jax.random.uniform(key, tuple(shape), jnp.float32) - 0.5) * noise.spread + noise.centre


def rms_normalize(g: Array, eps: float = 1e-5) -> Array:
    """The study's gradient normalisation ``g / (sqrt(mean(g ** 2)) + eps)`` over all of ``g``."""
    return g / (jnp.sqrt(jnp.mean(jnp.square(g))) + eps)


def normalize_image(x: Array) -> Array:
    """The study's ``normalize_img``: centre, ``/ (std + 1e-5)``, ``x 0.1``, ``+ 0.5``, clip to ``[0, 1]``."""
    x = x - jnp.mean(x)
    x = x / (jnp.std(x) + 1e-5)
    return jnp.clip(x * 0.1 + 0.5, 0.0, 1.0)


def deprocess_image(x: Array) -> Array:
    """The study's ``deprocess_image``: :func:`normalize_image`, ``x 255``, ``uint8`` (truncating, as numpy)."""
    return jnp.clip(normalize_image(x) * 255.0, 0.0, 255.0).astype(jnp.uint8)


def deprocessed(x: Array) -> np.ndarray:
    """:func:`deprocess_image` of each of ``x [n, H, W, C]``, as float32 in ``[0, 1]`` (for plotting)."""
    return np.asarray(jax.vmap(deprocess_image)(jnp.asarray(x))).astype(np.float32) / 255.0


# ---------------------------------------------------------------------------------------------------------
# Objectives: functions of ONE example x [H, W, C] to a scalar. Indices may be traced, so they vmap.


def filter_objective(net: Network, params: Params, layer: str, index: Array | int) -> Objective:
    """Mean activation of channel ``index`` of ``layer`` (the study's filter loss); ``x: [H, W, C]``."""

    def objective(x: Array) -> Array:
        act = forward(net, params, x[None], layers=(layer,))[1][layer][0]
        return jnp.mean(jnp.take(act, index, axis=-1))

    return objective


def class_objective(net: Network, params: Params, label: Array | int, *, score: str = "probability") -> Objective:
    """The softmax probability (``score="probability"``, the study's) or the logit of class ``label``."""
    check_score(score)

    def objective(x: Array) -> Array:
        return class_score(forward(net, params, x[None])[0][0], label, score)

    return objective


# ---------------------------------------------------------------------------------------------------------
# Regularisers and transformations.


def gaussian_blur(x: Array, sigma: float) -> Array:
    """Separable Gaussian blur of ``x: [H, W, C]`` per channel (radius ``ceil(3 sigma)``, edge padding)."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = jnp.asarray(k / k.sum())
    xp = jnp.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    h, w = x.shape[:2]
    rows = sum(k[i] * xp[i : i + h] for i in range(2 * radius + 1))
    return sum(k[i] * rows[:, i : i + w] for i in range(2 * radius + 1))


def total_variation(x: Array) -> Array:
    """Anisotropic total variation ``mean |dx| + mean |dy|`` of ``x: [H, W, C]``."""
    return jnp.mean(jnp.abs(jnp.diff(x, axis=0))) + jnp.mean(jnp.abs(jnp.diff(x, axis=1)))


def jitter(x: Array, pixels: int, *, key: Array) -> Array:
    """Rolls ``x: [H, W, C]`` by a random shift in ``[-pixels, pixels]`` along each spatial axis."""
    if pixels <= 0:
        return x
    dy, dx = jax.random.randint(key, (2,), -pixels, pixels + 1)
    return jnp.roll(x, (dy, dx), axis=(0, 1))


def affine(x: Array, angle_degrees: Array | float, scale: Array | float) -> Array:
    """Rotates ``x: [H, W, C]`` by ``angle_degrees`` and zooms it by ``scale`` about its centre (bilinear,
    edge values outside). ``affine(x, 0, 1) == x``."""
    h, w = x.shape[:2]
    theta = jnp.deg2rad(angle_degrees)
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2
    # The inverse map: each output pixel samples the input at the un-rotated, un-zoomed position.
    y, xr = (yy - cy) / scale, (xx - cx) / scale
    sy = jnp.cos(theta) * y - jnp.sin(theta) * xr + cy
    sx = jnp.sin(theta) * y + jnp.cos(theta) * xr + cx
    sample = lambda c: jax.scipy.ndimage.map_coordinates(c, [sy, sx], order=1, mode="nearest")
    return jax.vmap(sample, in_axes=2, out_axes=2)(x)


def random_transform(x: Array, ascent: Ascent, hyper: AscentParams, *, key: Array) -> Array:
    """Lucid's transformation robustness on ``x: [H, W, C]``: jitter, then a random zoom and rotation, as
    ``ascent`` (which pieces) and ``hyper`` (their ranges) set them."""
    k_jit, k_scale, k_rot = jax.random.split(key, 3)
    x = jitter(x, ascent.jitter, key=k_jit)
    if ascent.transform:
        s = 1.0 + jax.random.uniform(k_scale, (), minval=-hyper.scale, maxval=hyper.scale)
        a = jax.random.uniform(k_rot, (), minval=-hyper.rotate, maxval=hyper.rotate)
        x = affine(x, a, s)
    return x


# ---------------------------------------------------------------------------------------------------------
# Lucid's Fourier / decorrelated-colour parameterisation.

# Lucid's colour_correlation_svd_sqrt (ImageNet), and its normalisation by the largest column norm.
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT_NORMALIZED = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


def _spectrum_scale(h: int, w: int, decay_power: float) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    freqs = np.sqrt(fx * fx + fy * fy)
    # Lucid's `scale *= np.sqrt(w * h)` (optvis/param/spatial.py): without it a 224x224 start is 224x too flat
    # and pixel-space step sizes do not carry over.
    return (np.sqrt(w * h) / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power).astype(np.float32)


def fourier_init(shape: Sequence[int], *, key: Array, sd: float = 0.01) -> Array:
    """Lucid's random spectrum for an image of ``shape = [H, W, C]``: ``[C, H, W // 2 + 1, 2]`` normal * sd."""
    h, w, c = shape
    return sd * jax.random.normal(key, (c, h, w // 2 + 1, 2), jnp.float32)


def fourier_image(
    spectrum: Array, shape: Sequence[int], bounds: tuple[float, float], *, decay_power: float = 1.0,
    decorrelate: bool = True,
) -> Array:
    """The image ``[H, W, C]`` in ``bounds`` that a spectrum from :func:`fourier_init` parameterises.

    As Lucid's ``fft_image`` + ``to_valid_rgb``: scale frequencies by ``sqrt(H W) / f ** decay_power``, inverse real
    FFT, divide by 4, for 3 channels mix colours with the ImageNet colour correlation's square root
    (``decorrelate``), squash with a sigmoid and map ``[0, 1]`` to ``bounds``.
    """
    h, w, c = shape
    scale = jnp.asarray(_spectrum_scale(h, w, decay_power))
    spec = (spectrum[..., 0] + 1j * spectrum[..., 1]) * scale
    img = jnp.fft.irfft2(spec, s=(h, w)).transpose(1, 2, 0) / 4.0
    if decorrelate and c == 3:
        img = img @ jnp.asarray(_COLOR_SQRT_NORMALIZED).T
    lo, hi = bounds
    return lo + (hi - lo) * jax.nn.sigmoid(img)


# ---------------------------------------------------------------------------------------------------------
# The one step loop.


@dataclasses.dataclass(frozen=True)
class Ascent:
    """The static part of an ascent: what fixes the compiled program. Hashable: a static argument of ``jax.jit``.

    Built by :meth:`AscentConfig.build` together with the traced :class:`AscentParams`; a piece that is off here
    is compiled out, so its value in :class:`AscentParams` is then ignored.

    Attributes:
        steps: gradient steps.
        normalize: ``"rms"``, ``"l2"`` or ``"none"``.
        clip: clip pixels to ``bounds`` after each step.
        bounds: pixel range for ``clip`` and for the Fourier parameterisation.
        decay: apply L2 decay after each step (its rate and centre are traced).
        blur_every: blur every this many steps (0: never), Gaussian of ``blur_sigma`` pixels (the kernel's
            size depends on it, hence static).
        blur_sigma: the blur's standard deviation in pixels.
        tv: subtract a total-variation penalty (its weight is traced).
        jitter: random shift of up to this many pixels (0: off).
        transform: random zoom and rotation (their ranges are traced).
        fourier: optimise Lucid's Fourier / decorrelated-colour parameters instead of pixels.
        unroll: ``lax.scan``'s unroll factor; 0 unrolls all steps.
    """

    steps: int = 20
    normalize: str = "rms"
    clip: bool = False
    bounds: tuple[float, float] = (0.0, 255.0)
    decay: bool = False
    blur_every: int = 0
    blur_sigma: float = 0.5
    tv: bool = False
    jitter: int = 0
    transform: bool = False
    fourier: bool = False
    unroll: int = 0

    @property
    def random(self) -> bool:
        """Whether a step draws random numbers (transformations)."""
        return self.jitter > 0 or self.transform


class AscentParams(NamedTuple):
    """Traced hyperparameters of an ascent: ``jax.vmap`` over a stack of them is a sweep without recompiling.

    Attributes:
        step_size: the step, in pixel units after normalisation.
        decay: L2 decay rate: ``x <- centre + (1 - decay) (x - centre)`` (used when ``Ascent.decay``).
        decay_centre: the pixel value decay pulls towards.
        tv_weight: weight of the total-variation penalty (used when ``Ascent.tv``).
        scale: random zoom in ``[1 - scale, 1 + scale]`` (used when ``Ascent.transform``).
        rotate: random rotation in ``[-rotate, rotate]`` degrees (used when ``Ascent.transform``).
    """

    step_size: ArrayLike = 1.0
    decay: ArrayLike = 0.0
    decay_centre: ArrayLike = 0.0
    tv_weight: ArrayLike = 0.0
    scale: ArrayLike = 0.0
    rotate: ArrayLike = 0.0


@dataclasses.dataclass
class AscentConfig:
    """How an image is pushed up an objective, as configs nest it (mutable: the command line edits it).

    :meth:`build` is the one place that turns it into the static :class:`Ascent` and the traced
    :class:`AscentParams` that reach ``jax.jit``.

    Attributes:
        steps: gradient steps (the study: 20 for filters, 30 for a class, 60 for the Mona Lisa).
        step_size: the step, in pixel units after normalisation (the study: 1, 7, 0.01 for VGG16 in 0..255).
        normalize: ``"rms"`` (the study's), ``"l2"`` (unit L2 norm) or ``"none"``.
        clip: clip pixels to ``bounds`` after each step (the study does not; needed to stay a valid image).
        bounds: pixel range for ``clip`` and for the Fourier parameterisation.
        decay: Nguyen et al.'s L2 decay: ``x <- centre + (1 - decay) (x - centre)`` after each step (0: off).
        decay_centre: the pixel value decay pulls towards (0 in mean-subtracted units; 0.5 for [0, 1] pixels).
        blur_every: blur the image every this many steps (0: never), Gaussian of ``blur_sigma`` pixels.
        blur_sigma: the blur's standard deviation in pixels.
        tv_weight: subtract ``tv_weight * total_variation(x)`` from the objective (0: off).
        jitter: random shift of up to this many pixels before each evaluation (0: off).
        scale: random zoom in ``[1 - scale, 1 + scale]`` before each evaluation (0: off).
        rotate: random rotation in ``[-rotate, rotate]`` degrees before each evaluation (0: off).
        fourier: optimise Lucid's Fourier / decorrelated-colour parameters instead of pixels.
        unroll: ``lax.scan``'s unroll factor; 0 (default) unrolls all steps (see the module docstring: 3-5x
            faster on XLA:CPU).
    """

    steps: int = 20
    step_size: float = 1.0
    normalize: str = "rms"
    clip: bool = False
    bounds: tuple[float, float] = (0.0, 255.0)
    decay: float = 0.0
    decay_centre: float = 0.0
    blur_every: int = 0
    blur_sigma: float = 0.5
    tv_weight: float = 0.0
    jitter: int = 0
    scale: float = 0.0
    rotate: float = 0.0
    fourier: bool = False
    unroll: int = 0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raises a one-line error for settings that cannot run."""
        if self.normalize not in ("rms", "l2", "none"):
            raise ValueError(f"unknown normalize {self.normalize!r}; use 'rms', 'l2' or 'none'")
        if self.steps < 1:
            raise ValueError(f"steps={self.steps} must be >= 1")
        if isinstance(self.unroll, bool) or self.unroll < 0:
            raise ValueError(f"unroll={self.unroll!r} must be an int >= 0 (0: fully unrolled)")
        if self.blur_every < 0 or self.jitter < 0 or min(self.decay, self.scale, self.rotate, self.tv_weight) < 0:
            raise ValueError("blur_every, jitter, decay, scale, rotate and tv_weight must be >= 0 (0: off)")
        if not 0 <= self.decay < 1 or not 0 <= self.scale < 1:
            raise ValueError(f"decay={self.decay} and scale={self.scale} must be in [0, 1)")
        if self.fourier and (self.clip or self.decay or self.blur_every):
            raise ValueError("clip, decay and blur act on pixels; turn them off with fourier=True")

    def build(self) -> tuple[Ascent, AscentParams]:
        """The static settings and the traced ones, after :meth:`validate`."""
        self.validate()
        ascent = Ascent(
            steps=int(self.steps), normalize=self.normalize, clip=bool(self.clip),
            bounds=(float(self.bounds[0]), float(self.bounds[1])), decay=self.decay > 0,
            blur_every=int(self.blur_every), blur_sigma=float(self.blur_sigma), tv=self.tv_weight > 0,
            jitter=int(self.jitter), transform=self.scale > 0 or self.rotate > 0, fourier=bool(self.fourier),
            unroll=int(self.unroll),
        )
        hyper = AscentParams(step_size=self.step_size, decay=self.decay, decay_centre=self.decay_centre,
                             tv_weight=self.tv_weight, scale=self.scale, rotate=self.rotate)
        return ascent, AscentParams(*(jnp.asarray(v, jnp.float32) for v in hyper))


class AscentResult(NamedTuple):
    """``image [H, W, C]`` after the last step and ``values [steps + 1]``: the (untransformed, unpenalised)
    objective at the start and after every step."""

    image: Array
    values: Array


def _normalize(g: Array, how: str) -> Array:
    if how == "rms":
        return rms_normalize(g)
    if how == "l2":
        return g / (jnp.linalg.norm(g) + 1e-12)
    return g


def ascend(objective: Objective, start: Array, ascent: Ascent, hyper: AscentParams, *, key: Array) -> AscentResult:
    """Gradient ascent of ``objective`` from ``start`` as ``ascent`` and ``hyper`` describe; ONE example.

    Args:
        objective: ``x [H, W, C] -> scalar``, e.g. from :func:`filter_objective` or :func:`class_objective`.
        start: the starting pixels ``[H, W, C]``; with ``ascent.fourier`` a spectrum from :func:`fourier_init`
            (of an image of even width ``W``, which the spectrum's ``W // 2 + 1`` columns imply).
        ascent: the static settings (from :meth:`AscentConfig.build`).
        hyper: the traced ones (scalars; vmap over stacked ones to sweep).
        key: PRNG key of the random transformations (split per step; unused by a deterministic ascent).

    Returns:
        :class:`AscentResult` with the final image (pixels) and the objective after each step.
    """
    keys = jax.random.split(key, ascent.steps)

    if ascent.fourier:
        shape = (start.shape[1], 2 * (start.shape[2] - 1), start.shape[0])
        to_image = lambda p: fourier_image(p, shape, ascent.bounds)
    else:
        to_image = lambda p: p

    def loss(p: Array, k: Array) -> tuple[Array, Array]:
        x = to_image(p)
        value = objective(x)
        seen = random_transform(x, ascent, hyper, key=k) if ascent.random else x
        total = objective(seen) if ascent.random else value
        if ascent.tv:
            total = total - hyper.tv_weight * total_variation(x)
        return total, value

    def step(p: Array, inputs: tuple[Array, Array]) -> tuple[Array, Array]:
        k, i = inputs
        g, value = jax.grad(loss, has_aux=True)(p, k)
        p = p + hyper.step_size * _normalize(g, ascent.normalize)
        if ascent.decay:
            p = hyper.decay_centre + (1.0 - hyper.decay) * (p - hyper.decay_centre)
        if ascent.blur_every:
            p = jnp.where((i + 1) % ascent.blur_every == 0, gaussian_blur(p, ascent.blur_sigma), p)
        if ascent.clip:
            p = jnp.clip(p, *ascent.bounds)
        return p, value

    p, values = jax.lax.scan(step, start, (keys, jnp.arange(ascent.steps)), unroll=ascent.unroll or ascent.steps)
    image = to_image(p)
    return AscentResult(image, jnp.append(values, objective(image)))


def crossing_steps(values: Array, thresholds: Sequence[float] = (0.99, 0.999, 0.9999)) -> Array:
    """First step at which ``values [steps + 1]`` (as from :func:`ascend`) reaches each threshold; -1 if never.

    Step 0 is the start, step ``t`` the image after ``t`` updates. Returns ``[len(thresholds)]`` int32.
    """
    thr = jnp.asarray(thresholds, values.dtype)[:, None]
    hit = values[None, :] >= thr
    return jnp.where(hit.any(axis=1), jnp.argmax(hit, axis=1), -1).astype(jnp.int32)


# ---------------------------------------------------------------------------------------------------------
# Validation and the batched entry points (one vmapped, jitted program per call).


def layer_width(net: Network, params: Params, layer: str, image_shape: Sequence[int] | None = None) -> int:
    """Number of channels of ``layer`` (raises a one-line error for an unknown layer)."""
    net.check_layers((layer,))
    shape = tuple(image_shape or net.input_shape)
    if any(s is None for s in shape):
        raise ValueError(f"{net.name}: input size {shape} is not fixed; pass image_shape=(H, W, C)")
    return int(activation_shapes(net, params, jnp.zeros((1, *shape), jnp.float32), (layer,))[layer].shape[-1])


def check_filters(net: Network, params: Params, layer: str, indices: Sequence[int],
                  image_shape: Sequence[int] | None = None) -> np.ndarray:
    """Returns ``indices`` as an int32 array, or raises a one-line error naming the layer's width."""
    width = layer_width(net, params, layer, image_shape)
    idx = np.asarray(indices, np.int32).reshape(-1)
    bad = idx[(idx < 0) | (idx >= width)]
    if bad.size:
        raise ValueError(f"filter index {int(bad[0])} out of range for layer {layer!r} of {net.name}: "
                         f"it has {width} filters, use 0..{width - 1}")
    return idx


@xla.jit(static_argnames=("net", "layer", "ascent"))
def _filters_batch(net, params, layer, indices, starts, keys, ascent, hyper):
    one = lambda i, x, k: ascend(filter_objective(net, params, layer, i), x, ascent, hyper, key=k)
    return jax.vmap(one)(indices, starts, keys)


@xla.jit(static_argnames=("net", "ascent", "score"))
def _classes_batch(net, params, labels, starts, keys, ascent, hyper, score):
    one = lambda c, x, k: ascend(class_objective(net, params, c, score=score), x, ascent, hyper, key=k)
    return jax.vmap(one)(labels, starts, keys)


def starts_for(net: Network, n: int, ascent: Ascent | AscentConfig, noise: Noise, *, key: Array,
               image_shape: Sequence[int] | None = None) -> Array:
    """``n`` starting points ``[n, ...]``: gray noise pixels, or Fourier spectra when ``ascent.fourier``."""
    shape = tuple(image_shape or net.input_shape)
    if any(s is None for s in shape):
        raise ValueError(f"{net.name}: input size {shape} is not fixed; pass image_shape=(H, W, C)")
    keys = jax.random.split(key, n)
    if ascent.fourier and shape[1] % 2:
        raise ValueError(f"fourier=True needs an even image width (the spectrum implies it); got {shape[1]}")
    if ascent.fourier:
        return jax.vmap(lambda k: fourier_init(shape, key=k))(keys)
    starts = jax.vmap(lambda k: noise_image(shape, noise, key=k))(keys)
    mode = getattr(net.module, "preprocessing", "none")  # VGG16's; other networks preprocess nothing
    if noise.preprocessed and mode != "none":
        starts = imagenet.deprocess_input(starts, mode)
    return starts


def visualize_filters(
    net: Network, params: Params, layer: str, indices: Sequence[int], ascent: AscentConfig | None = None,
    noise: Noise = VGG_NOISE, *, key: Array, starts: Array | None = None,
    image_shape: Sequence[int] | None = None,
) -> AscentResult:
    """Maximises each filter ``indices`` of ``layer`` from its own gray noise, all as one vmapped program.

    Args:
        net, params: the network.
        layer: a name in ``net.layer_names``.
        indices: ``[n]`` channel indices of ``layer``.
        ascent: the settings (default ``AscentConfig()``: the study's 20 steps of size 1).
        noise: the start (default: the study's ``128 +- 10`` in the network's preprocessed input space, see
            :class:`Noise`); ignored when ``starts`` is given.
        key: PRNG key for the starts and any random transformations.
        starts: optional ``[n, H, W, C]`` starting images (or spectra).
        image_shape: ``(H, W, C)`` for networks that accept any size (VGG16 without its top).

    Returns:
        :class:`AscentResult` with ``image [n, H, W, C]`` and ``values [n, steps + 1]`` (mean activations).
    """
    idx = check_filters(net, params, layer, indices, image_shape)
    ascent, hyper = (ascent or AscentConfig()).build()
    k_start, k_steps = jax.random.split(key)
    if starts is None:
        starts = starts_for(net, len(idx), ascent, noise, key=k_start, image_shape=image_shape)
    return _filters_batch(net, params, layer, jnp.asarray(idx), starts, jax.random.split(k_steps, len(idx)), ascent,
                          hyper)


def maximize_classes(
    net: Network, params: Params, labels: Sequence[int], ascent: AscentConfig | None = None,
    noise: Noise = VGG_NOISE, *, key: Array, starts: Array | None = None, score: str = "probability",
    image_shape: Sequence[int] | None = None,
) -> AscentResult:
    """Pushes ``starts`` (default: gray noise) towards each class of ``labels``, as one vmapped program.

    Covers class maximisation from noise (default ``ascent``: the study's 30 steps of 7), a real image pushed to a target
    class (pass ``starts``; the study's step 0.01) and fooling images (``ascent.decay``/``blur_every``).

    Returns:
        :class:`AscentResult` with ``image [n, H, W, C]`` and ``values [n, steps + 1]`` (class probabilities,
        or logits with ``score="logit"``).
    """
    labs = np.asarray([net.check_class(c) for c in np.asarray(labels).reshape(-1)], np.int32)
    check_score(score)
    ascent, hyper = (ascent or AscentConfig(steps=30, step_size=7.0)).build()
    k_start, k_steps = jax.random.split(key)
    if starts is None:
        starts = starts_for(net, len(labs), ascent, noise, key=k_start, image_shape=image_shape)
    if len(starts) != len(labs):
        raise ValueError(f"got {len(starts)} starting images for {len(labs)} labels; pass one per label")
    return _classes_batch(net, params, jnp.asarray(labs), starts, jax.random.split(k_steps, len(labs)), ascent,
                          hyper, score)


# ---------------------------------------------------------------------------------------------------------
# A real image pushed to a class, and the numbers the experiments report.


def push_to_target(
    net: Network, params: Params, start: Array, target: int, ascent: AscentConfig, snapshots: int,
    thresholds: Sequence[float] = (0.99, 0.999, 0.9999),
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Pushes one real image ``start [H, W, C]`` up p(``target``), taking ``snapshots`` pictures on the way.

    One deterministic ascent, run as ``snapshots - 1`` stretches that restart from the last image: without
    random transformations or periodic blur, stopping and restarting changes nothing.

    Returns:
        ``(report, images [snapshots, H, W, C], probs [snapshots, classes])``: the report has the curve
        ``[steps + 1]`` of p(target), its final value, the first step above 0.5 and at each threshold (-1:
        never), and the top-1 class before and after.
    """
    target = net.check_class(target)
    static, hyper = ascent.build()
    if static.random or static.blur_every:
        raise ValueError("push_to_target needs a deterministic ascent: turn off jitter/scale/rotate and blur_every")
    if not 2 <= snapshots <= static.steps + 1:
        raise ValueError(f"snapshots={snapshots} must be in 2..steps + 1 ({static.steps + 1})")
    marks = np.unique(np.linspace(0, static.steps, snapshots).round().astype(int))
    x, shots, curve = jnp.asarray(start)[None], [np.asarray(start)], []
    labels = jnp.asarray([target], jnp.int32)
    keys = jax.random.split(jax.random.key(0), 1)  # never drawn from: the ascent is deterministic (checked above)
    for n in np.diff(marks):
        r = _classes_batch(net, params, labels, x, keys, dataclasses.replace(static, steps=int(n)), hyper,
                           "probability")
        x = r.image
        curve.extend(np.asarray(r.values[0, :-1]).tolist())
        shots.append(np.asarray(x[0]))
    curve.append(float(r.values[0, -1]))
    shots = np.stack(shots)
    probs = np.asarray(predict_proba(net, params, jnp.asarray(shots), batch_size=8))
    c = np.asarray(curve)
    report = {
        "target_class": target, "target_name": net.class_name(target), "steps": int(marks[-1]),
        "step_size": ascent.step_size, "curve": curve, "final": curve[-1],
        "first_step_above_half": int(np.argmax(c > 0.5)) if (c > 0.5).any() else -1,
        "thresholds": list(thresholds),
        "crossing_steps": np.asarray(crossing_steps(jnp.asarray(c), thresholds)).tolist(),
        "snapshot_steps": marks.tolist(), "target_prob_at_snapshots": probs[:, target].tolist(),
        "top1_before": _top1(net, probs[0]), "top1_after": _top1(net, probs[-1]),
        "pixel_min": float(shots.min()), "pixel_max": float(shots.max()),
    }
    return report, shots, probs


def _top1(net: Network, probs: np.ndarray) -> dict[str, Any]:
    label = int(np.argmax(probs))
    return {"class": label, "name": net.class_name(label), "probability": float(probs[label])}


def filter_report(values: Array) -> dict[str, Any]:
    """Monotonicity of filter ascents' mean activations ``values [filters, steps + 1]``: how many never fall,
    how many rise at every step (of all, and of those active at the start), and the start and final values."""
    v = np.asarray(values)
    d = np.diff(v, axis=1)
    active = v[:, 0] > 0
    return {
        "filters": len(v),
        "non_decreasing": int((d >= 0).all(axis=1).sum()),
        "strictly_increasing": int((d > 0).all(axis=1).sum()),
        "silent_at_start": int((~active).sum()),
        "strictly_increasing_of_active": int((d[active] > 0).all(axis=1).sum()),
        "start_mean_activation": v[:, 0].tolist(),
        "final_mean_activation": v[:, -1].tolist(),
    }


def class_report(values: Array, thresholds: Sequence[float] = (0.99, 0.999, 0.9999)) -> dict[str, Any]:
    """Class probabilities ``values [classes, steps + 1]``: finals, the first step at each threshold, the curves."""
    cross = np.asarray(jax.vmap(lambda v: crossing_steps(v, thresholds))(values))
    v = np.asarray(values)
    return {"thresholds": list(thresholds), "final": v[:, -1].tolist(), "min_final": float(v[:, -1].min()),
            "crossing_steps": cross.tolist(), "curves": v.tolist()}
