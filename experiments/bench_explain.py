"""Times jaxfool's explanations against Captum and pytorch-grad-cam, in one run, on the same weights
(``configs/bench_explain.py`` has the command).

For each model the JAX network and a plain-PyTorch twin share one set of random He-scaled weights, and the run
checks that the maps agree before it times anything: all-layer Grad-CAM (jaxfool's :func:`~jaxfool.explain.cams`,
one forward + one backward for every conv layer) against Captum's ``LayerGradCam`` per layer (+ bilinear
upsampling) and pytorch-grad-cam's ``GradCAM`` given all layers in one call; its cost against one forward+backward;
occlusion against Captum's ``Occlusion`` with the same window, stride, baseline and batch. Ratios are peer time /
jaxfool time (> 1: jaxfool is faster), medians of ``repeats`` calls after a warm-up; Score-CAM is one call each
(pytorch-grad-cam's without a warm-up: minutes per call, nothing to compile). Writes ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfool import cli, explain, runs, torch_twins, xla
from jaxfool.benchmarking import he_params, markdown_table, median_time, seconds, sync
from jaxfool.explain._common import input_gradients, pair
from jaxfool.models import forward, mnist_cnn, vgg16
from jaxfool.weights import to_torchvision

log = logging.getLogger("bench_explain")

def _twin(name: str, params) -> tuple[Any, dict[str, Any]]:
    """The plain-PyTorch twin and ``{layer: module whose output is that activation}``."""
    if name == "vgg16":
        model = torch_twins.frozen(torch_twins.vgg16(to_torchvision(params)))
        return model, torch_twins.vgg16_layers(model)
    model = torch_twins.mnist_cnn(params)
    return model, {"conv0": model.relu0, "conv1": model.relu1}


def bench_model(name: str, spec: Any, config: Any) -> dict:
    """Parity checks and timings for model ``name`` (``"mnist_cnn"`` or ``"vgg16"``); returns its metrics."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam, Occlusion

    net = vgg16(include_top=True, preprocess=False) if name == "vgg16" else mnist_cnn()
    params = he_params(net, seed=config.seed)
    model, modules = _twin(name, params)
    layers = tuple(modules)
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
    ours = sync(all_layers(params, x))
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
    t["jax_all_layers"] = median_time(lambda: sync(all_layers(params, x)), r)
    t["jax_one_forward_backward"] = median_time(lambda: sync(one_pass(params, x)), r)
    if spec.per_layer_calls:
        t["jax_per_layer_calls"] = sum(median_time(lambda f=f: sync(f(params, x)), r) for f in per_layer.values())
    t["captum_per_layer"] = median_time(captum_layers, r)
    pgc_module = torch_twins.import_pytorch_grad_cam(config.pytorch_grad_cam_site)
    if pgc_module is not None:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        pgc = pgc_module.GradCAM(model=model, target_layers=[modules[n] for n in layers])

        def pgc_all():
            return pgc(input_tensor=xt.clone().requires_grad_(True), targets=[ClassifierOutputTarget(label)])

        t["pytorch_grad_cam_all_layers_one_call"] = median_time(pgc_all, r)
        # Its hooks stay on every layer and keep a copy of each activation of every later forward pass: on VGG16,
        # Score-CAM's 512 passes would hold about 30 GB of them.
        pgc.activations_and_grads.release()
        if spec.score_cam_batch:  # Score-CAM at the last conv layer: one masked forward pass per channel
            last, b = layers[-1], spec.score_cam_batch
            ours_sc = xla.jit(lambda p, v: explain.score_cam(net, p, v, label, layer=last, batch_size=b))
            theirs_sc = pgc_module.ScoreCAM(model=model, target_layers=[modules[last]])
            theirs_sc.batch_size = b
            t["jax_score_cam"] = median_time(lambda: sync(ours_sc(params, x)), 1)  # its warm-up compiles
            t["pytorch_grad_cam_score_cam"] = seconds(  # once, cold: minutes a call, nothing to compile
                lambda: theirs_sc(input_tensor=xt.clone(), targets=[ClassifierOutputTarget(label)]))[0]
            act = np.asarray(forward(net, params, x[None], layers=(last,))[1][last][0])  # weight-dependent
            out["score_cam_constant_channels"] = int((np.ptp(act, axis=(0, 1)) == 0).sum())  # passes skipped
    t["jax_occlusion"] = median_time(lambda: sync(occlusion(params, x)), r)
    t["captum_occlusion"] = median_time(captum_occlusion, r)
    out["seconds"] = t
    out["ratios"] = {"all_layers_vs_one_forward_backward": t["jax_all_layers"] / t["jax_one_forward_backward"],
                     "captum_occlusion_over_jax_occlusion": t["captum_occlusion"] / t["jax_occlusion"]}
    if "jax_score_cam" in t:
        out["ratios"]["pytorch_grad_cam_score_cam_over_jax_score_cam"] = t["pytorch_grad_cam_score_cam"] / t["jax_score_cam"]
    for peer in ("captum_per_layer", "jax_per_layer_calls", "pytorch_grad_cam_all_layers_one_call"):
        if peer in t:
            out["ratios"][f"{peer}_over_jax_all_layers"] = t[peer] / t["jax_all_layers"]
    return out


def run(config: Any) -> dict:
    """Runs the benchmark for every enabled model; writes and returns the metrics."""
    import torch

    cli.validate(config)
    run_dir = runs.start_run(config, "bench_explain")
    specs = {"mnist_cnn": config.mnist, "vgg16": config.vgg16}
    metrics = {
        "device": jax.devices()[0].device_kind, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "models": [bench_model(name, spec, config) for name, spec in specs.items() if spec.enabled],
    }
    print(markdown_table(["model", "measure", "seconds or ratio"], [
        row for m in metrics["models"] for row in [(m["model"], k, f"{v:.4f}") for k, v in m["seconds"].items()]
        + [(m["model"], f"ratio {k}", f"{v:.2f}x") for k, v in m["ratios"].items()]]))
    runs.write_json(run_dir / "metrics.json", metrics)
    log.info("run folder %s", run_dir)
    return {**metrics, "run_dir": str(run_dir)}


if __name__ == "__main__":
    cli.main(run)
