"""ResNet50/101: parity with keras.applications and a plain PyTorch ResNet50, folded batch-norm, the
Network conventions, loading, and the cost of all-layer Grad-CAM."""

from __future__ import annotations

import contextlib

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from vgg_helpers import import_keras

from jaxfool import explain, imagenet
from jaxfool import weights as W
from jaxfool.explain._common import input_gradients
from jaxfool.models import activation_shapes, forward
from jaxfool.models.resnet import DEPTHS, block_names, fold_batch_norm, layer_names, param_shapes, resnet

SIZE = 64  # global pooling: the classifier works at any size; 64 leaves conv5 at 2x2


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / np.abs(b).max()


@contextlib.contextmanager
def numpy_initializers(keras):
    """Keras on JAX compiles one random program per kernel shape while building a model (30 s for ResNet50 on
    2 cores); every weight is overwritten with seeded values anyway, so draw the initial ones with numpy."""
    from keras.src.initializers import random_initializers as ri

    rng = np.random.default_rng(0)
    old = ri.VarianceScaling.__call__
    ri.VarianceScaling.__call__ = lambda self, shape, dtype=None: rng.uniform(-0.05, 0.05, shape).astype("float32")
    try:
        yield
    finally:
        ri.VarianceScaling.__call__ = old


def random_statistics(shapes, rng):
    """Random batch-norm parameters and statistics (positive variances), He-scaled kernels, random biases."""
    params = {}
    for name, kinds in shapes.items():
        if name.endswith("_bn"):
            c = kinds["gamma"]
            params[name] = {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.1, c),
                            "moving_mean": rng.normal(0, 0.3, c), "moving_variance": rng.uniform(0.5, 2.0, c)}
        else:
            k = kinds["kernel"]
            params[name] = {"kernel": rng.standard_normal(k) * np.sqrt(1.0 / np.prod(k[:-1])),
                            "bias": rng.normal(0, 0.1, kinds["bias"])}
    return jax.tree.map(lambda a: np.asarray(a, np.float32), params)


def keras_model(keras, depth, params):
    """keras.applications.ResNet<depth>(weights=None) holding ``params``."""
    build = {50: keras.applications.ResNet50, 101: keras.applications.ResNet101}[depth]
    with numpy_initializers(keras):
        model = build(weights=None, classifier_activation=None, input_shape=(SIZE, SIZE, 3))
    for layer in model.layers:
        if layer.weights:
            p = params[layer.name]
            kinds = W.keras_h5._ORDER[len(layer.weights)]
            layer.set_weights([p[k] for k in kinds])
    return model


@pytest.mark.parametrize("depth", [50, 101])
def test_logits_match_keras_through_the_legacy_h5_layout(tmp_path, depth):
    keras = import_keras()
    from keras.src.legacy.saving import legacy_h5_format

    rng = np.random.default_rng(depth)
    params = random_statistics(param_shapes(DEPTHS[f"resnet{depth}"]), rng)
    model = keras_model(keras, depth, params)
    path = tmp_path / f"resnet{depth}.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    pixels = rng.uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    probed = ("conv2_block1_out", "conv4_block2_out", "predictions")
    outputs = keras.Model(model.inputs, [model.get_layer(n).output for n in probed])
    want = dict(zip(probed, (np.asarray(a) for a in outputs.predict(
        keras.applications.resnet.preprocess_input(pixels.copy()), verbose=0)), strict=True))
    imported, info = W.import_keras_h5(path, check_hash=False)
    assert info["model"] == f"resnet{depth}" and info["include_top"] and info["preprocessing"] == "caffe"
    jax.tree.map(np.testing.assert_array_equal, imported, params)
    net = resnet(depth)
    logits, acts = jax.jit(lambda p, x: forward(net, p, x, layers=probed[:2]))(imported, pixels)
    assert np.std(want["predictions"]) > 1e-2
    assert rel_err(logits, want["predictions"]) <= 1e-4
    for name, act in acts.items():
        assert rel_err(act, want[name]) <= 1e-4, name
    # Batch-norm folded into the convolutions: the same logits.
    folded = jax.jit(lambda p, x: forward(resnet(depth, batch_norm="folded"), p, x)[0])(fold_batch_norm(imported), pixels)
    assert rel_err(folded, want["predictions"]) <= 1e-4


@pytest.fixture(scope="module")
def torch_twin():
    """A plain PyTorch ResNet50 (torchvision's layout, random batch-norm statistics) and its state dict."""
    torch = pytest.importorskip("torch")
    from jaxfool.torch_twins import resnet as torch_resnet

    torch.manual_seed(0)
    model = torch_resnet(50)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.3), m.running_var.uniform_(0.5, 2.0)
    return model, model.state_dict()


def test_torchvision_layout_matches_pytorch(tmp_path, torch_twin):
    torch = pytest.importorskip("torch")
    model, state = torch_twin
    path = tmp_path / "resnet50.pth"
    torch.save(state, path)
    pixels = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    x = np.asarray(imagenet.preprocess_input(pixels, mode="torch"))
    with torch.no_grad():
        want = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    params, info = W.import_torchvision(path)
    assert info["model"] == "resnet50" and info["stride_on"] == "3x3" and info["preprocessing"] == "torch"
    assert np.std(want) > 1e-2
    got, _ = forward(resnet(50, preprocess=False, stride_on="3x3"), params, x)
    assert rel_err(got, want) <= 1e-4
    # Keras' variant (stride on the 1x1) is another function of the same weights.
    assert rel_err(forward(resnet(50, preprocess=False), params, x)[0], want) > 1e-2
    # load_resnet50 picks the variant and the preprocessing; folded and separate agree; the export inverts.
    ckpt = W.convert(path, tmp_path / "ckpt")
    for fold in (True, False):
        net, loaded = W.load_resnet50(ckpt, fold_batch_norm=fold)
        assert net.module.stride_on == "3x3" and net.module.preprocessing == "torch"
        assert ("conv1_bn" in loaded) != fold
        assert rel_err(forward(net, loaded, pixels)[0], want) <= 1e-4
    back = W.to_torchvision(params)
    assert all(np.array_equal(back[k], v.numpy()) for k, v in state.items() if k in back)
    assert {k for k in state if not k.endswith("num_batches_tracked")} == set(back)


def test_names_shapes_and_module_parameters():
    for depth in (50, 101):
        net = resnet(depth)
        depths = DEPTHS[f"resnet{depth}"]
        shapes = jax.eval_shape(lambda n=net: n.init(key=jax.random.key(0), input_shape=(SIZE, SIZE, 3)))
        assert jax.tree.map(lambda a: a.shape, shapes) == param_shapes(depths)
        assert len(block_names(depths)) == sum(depths) and net.layer_names[-2:] == ("avg_pool", "predictions")
    assert param_shapes(DEPTHS["resnet50"])["conv2_block1_2_conv"]["kernel"] == (3, 3, 64, 64)
    net = resnet(50, include_top=False)
    params = W.random_params(False, key=jax.random.key(0), model="resnet50")
    x = jnp.zeros((1, 64, 96, 3))
    layers = ("conv1_relu", "pool1_pool", "conv3_block1_out", "conv4_block6_out", "conv5_block3_out")
    acts = activation_shapes(net, params, x, layers)
    assert net.layer_names[-1] == "conv5_block3_out"
    assert [acts[n].shape for n in layers] == [(1, 32, 48, 64), (1, 16, 24, 64), (1, 8, 12, 512), (1, 4, 6, 1024),
                                               (1, 2, 3, 2048)]
    assert layer_names(DEPTHS["resnet101"])[3:6] == ("conv2_block1_out", "conv2_block2_out", "conv2_block3_out")
    with pytest.raises(ValueError, match="unknown ResNet depth 34"):
        resnet(34)


def test_random_weights_are_kerass_and_loaders_check_the_model(tmp_path):
    a = W.load_params("resnet101", "random", include_top=False, key=jax.random.key(0))[0]
    assert set(a) == set(W.param_shapes(False, model="resnet101"))
    assert float(a["conv1_bn"]["moving_variance"].min()) == 1.0 and float(jnp.abs(a["conv1_conv"]["bias"]).max()) == 0
    net, p = W.load_resnet50("random", key=jax.random.key(0))
    assert net.module.stride_on == "1x1" and net.module.batch_norm == "folded" and "conv1_bn" not in p
    ckpt = W.save_checkpoint(jax.device_get(W.load_params("resnet50", "random", include_top=False,
                                                          key=jax.random.key(1))[0]),
                             tmp_path / "r50", metadata={"model": "resnet50", "source": "test", "include_top": False})
    with pytest.raises(W.WeightsError, match="are resnet50's, not resnet101's"):
        W.load_resnet101(ckpt, include_top=False)
    with pytest.raises(W.WeightsError, match="no classifier"):
        W.load_resnet50(ckpt)


def test_all_block_grad_cams_cost_at_most_one_and_a_half_forward_backward():
    """XLA's flop count of the compiled programs on the CPU backend (deterministic, unlike wall time)."""
    net = resnet(50)
    cpu = jax.devices("cpu")[0]
    params = jax.device_put(W.random_params(True, key=jax.random.key(0), model="resnet50"), cpu)
    x = jax.device_put(jnp.zeros((SIZE, SIZE, 3)), cpu)
    layers = tuple(f"{b}_out" for b in block_names(DEPTHS["resnet50"]))
    flops = lambda f: f.lower(params, x).compile().cost_analysis()["flops"]  # noqa: E731
    all_blocks = flops(jax.jit(lambda p, v: explain.cams(net, p, v, 0, layers=layers)))
    one_pass = flops(jax.jit(lambda p, v: input_gradients(net, p, v[None], 0)))
    print(f"all-block Grad-CAM flops / one forward+backward: {all_blocks / one_pass:.3f}")
    assert all_blocks <= 1.5 * one_pass, (all_blocks, one_pass)
