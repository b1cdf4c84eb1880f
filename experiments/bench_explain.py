"""Times jaxfool's explanations against Captum and pytorch-grad-cam, in one run, on the same weights.

Run:
    python -m experiments.bench_explain --config configs/bench_explain.py

For each model the JAX network and a plain-PyTorch twin share one set of (random, He-scaled) weights, so
the peers compute the same maps; the run checks that they agree before it times anything. Reported per model:

* all-layer Grad-CAM: jaxfool's :func:`~jaxfool.explain.cams` (one forward + one backward for every conv layer)
  vs Captum's ``LayerGradCam`` called per layer (+ bilinear upsampling, as ``cams`` does) and vs
  pytorch-grad-cam's ``GradCAM`` given all layers in one call (it computes each layer's map, then averages);
* the cost of all layers relative to one forward+backward (jaxfool's input gradient);
* occlusion: jaxfool vs Captum's ``Occlusion`` with the same window, stride, baseline and batch.

Ratios are peer time / jaxfool time (> 1: jaxfool is faster). Timings are medians of ``repeats`` calls after a
warm-up (which includes jaxfool's compilation). The peers run with parameter gradients off, their fastest setting.
Writes ``metrics.json`` and ``config.json`` into ``<workdir>/bench_explain/<run>/``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, explain, runs, xla
from jaxfool.explain._common import input_gradients, pair
from jaxfool.models import Network, Tap, mnist_cnn
from jaxfool.models.layers import max_pool_2x2

log = logging.getLogger("bench_explain")

VGG_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VGG_CONV_LAYERS = tuple(f"block{b}_conv{i}" for b, (n, _) in enumerate(VGG_BLOCKS, 1) for i in range(1, n + 1))


class _VGG16(nn.Module):
    """Stand-in for ``jaxfool.models.vgg16`` until it lands on main: same layer and parameter names."""

    relu: Callable[[jax.Array], jax.Array] = nn.relu

    @nn.compact
    def __call__(self, x, taps=None):
        t = Tap(taps)
        x = t("inputs", x)
        for b, (n, features) in enumerate(VGG_BLOCKS, 1):
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                x = t(name, self.relu(nn.Conv(features, (3, 3), padding="SAME", name=name)(x)))
            x = t(f"block{b}_pool", max_pool_2x2(x))
        x = t("flatten", x.reshape(x.shape[0], -1))
        x = t("fc1", self.relu(nn.Dense(4096, name="fc1")(x)))
        x = t("fc2", self.relu(nn.Dense(4096, name="fc2")(x)))
        t("predictions", nn.Dense(1000, name="predictions")(x))
        return t.activations


def vgg16_network() -> Network:
    """jaxfool's VGG16 (raw input, no preprocessing) if main has it, else the stand-in."""
    try:
        from jaxfool.models.vgg16 import vgg16

        return vgg16(include_top=True, preprocess=False)
    except ImportError:
        names = ("inputs", *(n for b, (k, _) in enumerate(VGG_BLOCKS, 1)
                             for n in (*(f"block{b}_conv{i}" for i in range(1, k + 1)), f"block{b}_pool")),
                 "flatten", "fc1", "fc2", "predictions")
        return Network("vgg16", _VGG16(), (224, 224, 3), names, (0.0, 255.0), 1000)


def _he_params(net: Network, seed: int):
    """Random weights with He-normal kernels and small biases, so activations keep their scale over 16 layers."""
    shapes = jax.eval_shape(lambda: net.init(key=jax.random.key(0)))
    rng = np.random.default_rng(seed)

    def draw(path, s):
        if path[-1].key == "bias":
            return jnp.asarray(rng.normal(0, 0.01, s.shape), jnp.float32)
        fan_in = int(np.prod(s.shape[:-1]))
        return jnp.asarray(rng.normal(0, np.sqrt(2 / fan_in), s.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def torch_twin(net: Network, params):
    """A plain-PyTorch copy of the VGG16 or MNIST CNN with the same weights (OIHW kernels, NHWC flatten).

    Returns ``(model, {layer name: module whose output is that activation})``.
    """
    import torch

    def conv(p, pad):
        k = np.asarray(p["kernel"])
        m = torch.nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding=pad)
        m.weight.data, m.bias.data = torch.tensor(k.transpose(3, 2, 0, 1).copy()), torch.tensor(np.asarray(p["bias"]))
        return m

    def dense(p):
        k = np.asarray(p["kernel"])
        m = torch.nn.Linear(*k.shape)
        m.weight.data, m.bias.data = torch.tensor(k.T.copy()), torch.tensor(np.asarray(p["bias"]))
        return m

    class NHWCFlatten(torch.nn.Module):
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    taps, seq = {}, []
    if net.name.startswith("vgg16"):
        for b, (n, _) in enumerate(VGG_BLOCKS, 1):
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                seq += [conv(params[name], 1), torch.nn.ReLU()]
                taps[name] = seq[-1]
            seq.append(torch.nn.MaxPool2d(2))
        seq += [NHWCFlatten(), dense(params["fc1"]), torch.nn.ReLU(), dense(params["fc2"]), torch.nn.ReLU(),
                dense(params["predictions"])]
    else:
        for i in range(2):
            seq += [conv(params[f"conv{i}"], 2), torch.nn.MaxPool2d(2), torch.nn.ReLU()]
            taps[f"conv{i}"] = seq[-1]
        seq += [NHWCFlatten(), dense(params["fc"]), torch.nn.ReLU(), dense(params["logits"])]
    model = torch.nn.Sequential(*seq).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, taps


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: compilation, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _ready(tree):
    return jax.block_until_ready(tree)


def _import_pytorch_grad_cam(site: str | None):
    """pytorch-grad-cam's ``GradCAM``, or ``None`` if it is not installed.

    It imports torchvision only for preprocessing and detection helpers that GradCAM never calls; PyPI's
    torchvision is built for CUDA torch and fails to load next to the CPU torch, so a stub stands in for it.
    """
    if site and os.path.isdir(site) and site not in sys.path:
        sys.path.insert(0, site)
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001  (a CUDA build fails with RuntimeError, not ImportError)
        for mod in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[mod]
        stub = {name: types.ModuleType(name) for name in
                ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops")}
        stub["torchvision"].transforms = stub["torchvision.transforms"]
        stub["torchvision"].ops = stub["torchvision.ops"]
        stub["torchvision.transforms"].functional = stub["torchvision.transforms.functional"]
        for attr in ("Compose", "Normalize", "ToTensor"):
            setattr(stub["torchvision.transforms"], attr, None)
        stub["torchvision.transforms.functional"].resize = None
        sys.modules.update(stub)
    try:
        from pytorch_grad_cam import GradCAM

        return GradCAM
    except Exception as err:  # noqa: BLE001
        print(f"pytorch-grad-cam unavailable ({type(err).__name__}: {err}); skipping it")
        return None


def bench_model(name: str, spec: Any, config: Any) -> dict:
    """Parity checks and timings for model ``name`` (``"mnist_cnn"`` or ``"vgg16"``); returns its metrics."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam, Occlusion

    net = vgg16_network() if name == "vgg16" else mnist_cnn()
    layers = VGG_CONV_LAYERS if name == "vgg16" else ("conv0", "conv1")
    params = _he_params(net, config.seed)
    model, modules = torch_twin(net, params)
    rng = np.random.default_rng(config.seed + 1)
    x = rng.uniform(0, 1, net.input_shape).astype(np.float32)
    xt = torch.tensor(x.transpose(2, 0, 1)[None].copy())
    label = int(model(xt).argmax())  # explain the predicted class, as the studies do
    size = x.shape[:2]
    occ = dataclasses.asdict(spec.occlusion)
    out: dict = {"model": name, "layers": len(layers), "label": label, "occlusion": occ}

    # --- jaxfool, compiled once for this network.
    all_layers = xla.jit(lambda p, v: explain.cams(net, p, v, label, layers=layers))
    one_pass = xla.jit(lambda p, v: input_gradients(net, p, v[None], label)[0])
    per_layer = {n: xla.jit(lambda p, v, n=n: explain.grad_cam(net, p, v, label, layer=n)) for n in layers}
    occlusion = xla.jit(lambda p, v: explain.occlusion(net, p, v, label, **occ))

    # --- Captum and pytorch-grad-cam on the twin.
    def captum_layers():
        return {n: LayerAttribution.interpolate(
            LayerGradCam(model, modules[n]).attribute(xt, label, relu_attributions=True), size, "bilinear")
            for n in layers}

    window, stride = pair(occ["window"], "window"), pair(occ["stride"], "stride")

    def captum_occlusion():
        c = x.shape[-1]
        return Occlusion(model).attribute(xt, target=label, sliding_window_shapes=(c, *window),
                                          strides=(c, *stride), baselines=occ["baseline"],
                                          perturbations_per_eval=occ["batch_size"])

    # Parity first: the same weights must give the same maps (relative to each map's scale).
    ours = _ready(all_layers(params, x))
    theirs = captum_layers()
    out["max_rel_diff_grad_cam"] = max(
        float(np.abs(np.asarray(ours[n]) - theirs[n].detach().numpy()[0, 0]).max()
              / max(1e-12, float(np.abs(np.asarray(ours[n])).max()))) for n in layers)
    ours_occ = np.asarray(occlusion(params, x))
    theirs_occ = captum_occlusion().numpy()[0, 0]
    out["max_rel_diff_occlusion"] = float(np.abs(ours_occ - theirs_occ).max() / max(1e-12, np.abs(ours_occ).max()))
    log.info("%s parity (max |diff| / max |map|): grad-cam %.2g, occlusion %.2g", name,
             out["max_rel_diff_grad_cam"], out["max_rel_diff_occlusion"])

    r = spec.repeats
    t = {}
    t["jax_all_layers"] = _median_time(lambda: _ready(all_layers(params, x)), r)
    t["jax_one_forward_backward"] = _median_time(lambda: _ready(one_pass(params, x)), r)
    if spec.per_layer_calls:
        t["jax_per_layer_calls"] = sum(_median_time(lambda f=f: _ready(f(params, x)), r) for f in per_layer.values())
    t["captum_per_layer"] = _median_time(captum_layers, r)
    grad_cam_cls = _import_pytorch_grad_cam(config.pytorch_grad_cam_site)
    if grad_cam_cls is not None:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        pgc = grad_cam_cls(model=model, target_layers=[modules[n] for n in layers])

        def pgc_all():
            return pgc(input_tensor=xt.clone().requires_grad_(True), targets=[ClassifierOutputTarget(label)])

        t["pytorch_grad_cam_all_layers_one_call"] = _median_time(pgc_all, r)
    t["jax_occlusion"] = _median_time(lambda: _ready(occlusion(params, x)), r)
    t["captum_occlusion"] = _median_time(captum_occlusion, r)
    out["seconds"] = t
    out["ratios"] = {
        "all_layers_vs_one_forward_backward": t["jax_all_layers"] / t["jax_one_forward_backward"],
        "captum_per_layer_over_jax_all_layers": t["captum_per_layer"] / t["jax_all_layers"],
        "captum_occlusion_over_jax_occlusion": t["captum_occlusion"] / t["jax_occlusion"],
    }
    if "jax_per_layer_calls" in t:
        out["ratios"]["jax_per_layer_calls_over_jax_all_layers"] = t["jax_per_layer_calls"] / t["jax_all_layers"]
    if "pytorch_grad_cam_all_layers_one_call" in t:
        out["ratios"]["pytorch_grad_cam_over_jax_all_layers"] = (
            t["pytorch_grad_cam_all_layers_one_call"] / t["jax_all_layers"])
    return out


def run(config: Any) -> dict:
    """Runs the benchmark for every enabled model; writes and returns the metrics."""
    import torch

    cli.validate(config)
    run_dir = runs.new_run_dir(config.workdir, "bench_explain", config.run_name)
    runs.write_json(run_dir / "config.json", config)
    specs = {"mnist_cnn": config.mnist, "vgg16": config.vgg16}
    metrics = {
        "device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "models": [bench_model(name, spec, config) for name, spec in specs.items() if spec.enabled],
    }
    print(_table(metrics))
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("run folder %s", run_dir)
    return {**metrics, "run_dir": str(run_dir)}


def _table(metrics: dict) -> str:
    lines = [f"{'model':10s} {'measure':48s} {'seconds':>9s}"]
    for m in metrics["models"]:
        for k, v in m["seconds"].items():
            lines.append(f"{m['model']:10s} {k:48s} {v:9.4f}")
        for k, v in m["ratios"].items():
            lines.append(f"{m['model']:10s} {'ratio ' + k:48s} {v:9.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    cli.main(run)
