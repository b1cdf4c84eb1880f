"""VGG16: parity with keras.applications.VGG16 and a plain PyTorch VGG16, and the Network conventions."""

from __future__ import annotations

import dataclasses

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from vgg_helpers import import_keras, random_params, torch_vgg16

from jaxfool import imagenet
from jaxfool.models import forward, forward_with_taps, zero_taps
from jaxfool.models.vgg16 import CONV_LAYERS, FEATURE_LAYERS, layer_names, vgg16
from jaxfool.weights import import_keras_h5, import_torchvision, load_vgg16

PROBED = ("block1_conv2", "block3_pool", "block5_conv3", "fc2", "predictions")


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.fixture(scope="module")
def pixels():
    """Two random RGB images in [0, 255]."""
    return np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def keras_reference(tmp_path_factory, pixels):
    """Keras' VGG16 with its own random weights, saved in the legacy HDF5 layout of the official file, and
    its logits and block activations for ``pixels``."""
    keras = import_keras()
    from keras.src.legacy.saving import legacy_h5_format

    model = keras.applications.VGG16(weights=None, classifier_activation=None)
    path = tmp_path_factory.mktemp("keras") / "vgg16_keras_random.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    outputs = keras.Model(model.inputs, [model.get_layer(n).output for n in PROBED])
    x = keras.applications.vgg16.preprocess_input(pixels.copy())
    acts = dict(zip(PROBED, (np.asarray(a) for a in outputs(x)), strict=True))
    return path, acts


def test_keras_file_has_the_official_layout(keras_reference):
    path, _ = keras_reference
    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        assert names[1:] == list(layer_names(True)[1:])  # names[0] is Keras' input layer
        weights = [w.decode() if isinstance(w, bytes) else w for w in f["block1_conv1"].attrs["weight_names"]]
        assert len(weights) == 2 and weights[0].endswith("kernel") and weights[1].endswith("bias")
        assert f["block1_conv1"][weights[0]].shape == (3, 3, 3, 64)
        assert f["fc1"][f["fc1"].attrs["weight_names"][0]].shape == (25088, 4096)
        assert len(f["block1_pool"].attrs["weight_names"]) == 0


def test_logits_and_probabilities_match_keras(keras_reference, pixels):
    keras = import_keras()
    path, acts = keras_reference
    params, info = import_keras_h5(path, check_hash=False)
    assert info["include_top"] and info["preprocessing"] == "caffe"
    net = vgg16()
    logits, mine = jax.jit(lambda p, x: forward(net, p, x, layers=PROBED[:-1]))(params, pixels)
    assert rel_err(logits, acts["predictions"]) <= 1e-4
    assert np.std(acts["predictions"]) > 1e-3  # the comparison is not between two near-constant vectors
    # Keras' VGG16 outputs softmax(predictions); jaxfool's probabilities are the softmax of its logits.
    keras_probs = np.asarray(keras.activations.softmax(acts["predictions"]))
    assert rel_err(jax.nn.softmax(logits), keras_probs) <= 1e-4
    for name, act in mine.items():
        assert rel_err(act, acts[name]) <= 1e-4, name


def test_torchvision_layout_matches_pytorch(tmp_path, pixels):
    torch = pytest.importorskip("torch")
    model = torch_vgg16()
    path = tmp_path / "vgg16_random.pth"
    torch.save(model.state_dict(), path)
    x = np.asarray(imagenet.preprocess_input(pixels, mode="torch"))
    with torch.no_grad():
        want = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    params, info = import_torchvision(path)
    assert info["preprocessing"] == "torch"
    logits, _ = forward(vgg16(preprocess=False), params, x)
    assert rel_err(logits, want) <= 1e-4
    assert np.std(want) > 1e-2


def test_torch_notop_features_match(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch_vgg16(include_top=False)
    path = tmp_path / "vgg16_notop.pth"
    torch.save(model.state_dict(), path)
    pixels = np.random.default_rng(1).uniform(0, 255, size=(1, 64, 48, 3)).astype(np.float32)
    x = np.asarray(imagenet.preprocess_input(pixels, mode="torch"))
    with torch.no_grad():
        want = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    params, info = import_torchvision(path)
    assert not info["include_top"]
    got, _ = forward(vgg16(include_top=False, preprocess=False), params, x)
    assert got.shape == (1, 2, 1, 512)
    assert rel_err(got, want) <= 1e-4
    # load_vgg16 builds the network with torchvision's preprocessing inside: raw pixels in, same output.
    net, loaded = load_vgg16(path, include_top=False)
    assert net.module.preprocessing == "torch" and net.bounds == (0.0, 255.0)
    assert rel_err(forward(net, loaded, pixels)[0], want) <= 1e-4


def test_activations_names_and_shapes():
    net = vgg16(include_top=False)
    params = random_params(False)
    x = jnp.zeros((1, 64, 96, 3))
    logits, acts = forward(net, params, x, layers=net.layer_names)
    assert net.layer_names[0] == "inputs" and net.layer_names[-1] == "block5_pool"
    assert logits.shape == (1, 2, 3, 512)
    assert acts["block1_conv1"].shape == (1, 64, 96, 64)
    assert acts["block3_pool"].shape == (1, 8, 12, 256)
    assert set(CONV_LAYERS) < set(FEATURE_LAYERS) and len(CONV_LAYERS) == 13
    top = vgg16()
    assert top.layer_names[-4:] == ("flatten", "fc1", "fc2", "predictions")
    assert top.input_shape == (224, 224, 3) and top.num_classes == 1000 and top.bounds == (0.0, 255.0)
    assert top.class_names[65] == "sea_snake" and top.class_names[51] == "triceratops"
    assert vgg16(include_top=False).input_shape == (None, None, 3)
    assert vgg16(preprocess=False).bounds == pytest.approx((-123.68, 151.061))


def test_preprocessing_inside_equals_preprocessing_outside():
    params = random_params(False)
    pixels = np.random.default_rng(2).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    inside, _ = forward(vgg16(include_top=False), params, pixels)
    outside, _ = forward(vgg16(include_top=False, preprocess=False), params, imagenet.preprocess_input(pixels))
    np.testing.assert_allclose(inside, outside, rtol=1e-6)


def test_taps_give_gradients_at_conv_layers_from_one_pass():
    net = vgg16(include_top=False)
    params = random_params(False)
    x = jnp.asarray(np.random.default_rng(3).uniform(0, 255, (1, 32, 32, 3)), jnp.float32)
    layers = ("block3_conv3", "block5_conv3")
    taps = zero_taps(net, params, x, layers)

    def score(taps):
        out, _ = forward_with_taps(net, params, x, taps)
        return out.sum()

    grads = jax.grad(score)(taps)
    # Gradient at block5_conv3 by hand: d(sum of 2x2 max-pool)/d(input) is the indicator of the window's first
    # maximum in row-major order (as in PyTorch and TensorFlow); the dead channels' windows are all tied at 0.
    act = np.asarray(forward(net, params, x, layers=("block5_conv3",))[1]["block5_conv3"][0])  # [2, 2, 512]
    flat = act.reshape(4, -1)
    first = np.zeros_like(flat)
    first[flat.argmax(axis=0), np.arange(flat.shape[1])] = 1.0  # argmax returns the first maximum
    assert (flat == flat.max(axis=0)).sum(axis=0).max() > 1  # ties are present, so the rule is exercised
    np.testing.assert_array_equal(grads["block5_conv3"][0], first.reshape(act.shape))
    assert grads["block3_conv3"].shape == (1, 8, 8, 256) and float(jnp.abs(grads["block3_conv3"]).sum()) > 0


def test_relu_is_swappable():
    net = vgg16(include_top=False)
    params = random_params(False)
    x = jnp.ones((1, 32, 32, 3)) * 100.0
    calls = []

    def leaky(v):
        calls.append(v.shape)
        return jax.nn.leaky_relu(v, 0.1)

    swapped = dataclasses.replace(net, module=net.module.clone(relu=leaky))
    a, _ = forward(net, params, x)
    b, _ = forward(swapped, params, x)
    assert len(calls) == 13 and not np.allclose(a, b)
