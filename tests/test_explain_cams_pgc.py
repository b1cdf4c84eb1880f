"""XGrad-CAM, HiResCAM, Eigen-CAM, Score-CAM and Ablation-CAM against pytorch-grad-cam on identical weights.

pytorch-grad-cam returns ``resize(minmax(relu(cam)))`` (cv2 bilinear); jaxfool's un-upsampled map goes through the
same normalisation and cv2 resize, so the comparison is of the maps themselves. The reference is installed with
``pip install --no-deps grad-cam ttach opencv-python-headless`` (its torchvision import is stubbed, see
:func:`jaxfool.torch_twins.import_pytorch_grad_cam`); the tests skip without it.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from explain_twins import nchw, torch_mnist_cnn

from jaxfool import explain, torch_twins
from jaxfool.models import mnist_cnn

pytest.importorskip("torch")
pgc = torch_twins.import_pytorch_grad_cam("/tmp/pgc_site")
if pgc is None:
    pytest.skip("pytorch-grad-cam is not installed (pip install --no-deps grad-cam ttach opencv-python-headless)",
                allow_module_level=True)
import cv2  # noqa: E402  (installed with pytorch-grad-cam)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def setup():
    net = mnist_cnn()
    params = net.init(key=jax.random.key(3))
    x = np.random.default_rng(0).uniform(size=net.input_shape).astype(np.float32)
    twin = torch_mnist_cnn(params)
    label = int(twin(nchw(x)).argmax())
    return net, params, x, twin, label


def _minmax(cam: np.ndarray) -> np.ndarray:
    cam = cam - cam.min()
    return cam / (1e-7 + cam.max())


def _like_pgc(cam, size) -> np.ndarray:
    """What pytorch-grad-cam does to a layer's map: rectify, ``scale_cam_image`` (min-max, cv2 resize), then
    min-max again when it aggregates the (one) layer."""
    return _minmax(cv2.resize(_minmax(np.maximum(np.asarray(cam, np.float32), 0)), size[::-1]))


@pytest.mark.parametrize("method, reference", [
    ("xgrad_cam", "XGradCAM"), ("hires_cam", "HiResCAM"), ("score_cam", "ScoreCAM"), ("ablation_cam", "AblationCAM"),
])
@pytest.mark.parametrize("layer, module", [("conv0", "relu0"), ("conv1", "relu1")])
def test_cams_equal_pytorch_grad_cam(setup, method, reference, layer, module):
    net, params, x, twin, label = setup
    ours = getattr(explain, method)(net, params, x, label, layer=layer, upsample=False)
    cam = getattr(pgc, reference)(model=twin, target_layers=[getattr(twin, module)])
    if hasattr(cam, "batch_size"):
        cam.batch_size = 16
    theirs = cam(input_tensor=nchw(x).requires_grad_(True), targets=[ClassifierOutputTarget(label)])[0]
    mine = _like_pgc(ours, x.shape[:2])
    assert np.abs(mine).max() > 0.5  # a real map, not an all-zero one
    np.testing.assert_allclose(mine, theirs, atol=1e-5)


@pytest.mark.parametrize("layer, module", [("conv0", "relu0"), ("conv1", "relu1")])
def test_eigen_cam_is_pytorch_grad_cams_projection_with_a_fixed_sign(setup, layer, module):
    net, params, x, twin, label = setup
    acts = {}

    def keep(module, inputs, output):  # returns None: a forward hook's return value would replace the output
        acts["a"] = output.detach().numpy()

    handle = getattr(twin, module).register_forward_hook(keep)
    twin(nchw(x))
    handle.remove()
    theirs = get_2d_projection(acts["a"])[0]
    theirs = -theirs if -theirs.min() > theirs.max() else theirs
    ours = explain.eigen_cam(net, params, x, label, layer=layer, relu=False, upsample=False)
    np.testing.assert_allclose(ours, theirs, atol=1e-5 * np.abs(theirs).max())
    assert ours.max() >= -ours.min()  # the sign convention


def test_one_pass_cams_equal_the_single_layer_functions(setup):
    net, params, x, _, label = setup
    for method in ("xgrad_cam", "hires_cam", "eigen_cam"):
        both = explain.cams(net, params, x, label, method=method)
        for layer in ("conv0", "conv1"):
            np.testing.assert_allclose(both[layer], getattr(explain, method)(net, params, x, label, layer=layer),
                                       rtol=1e-6, atol=1e-7)


def test_score_cam_masks_align_corners_and_normalise():
    from jaxfool.explain.perturbation_cams import align_corners_matrix, score_cam_masks

    np.testing.assert_allclose(align_corners_matrix(2, 3), [[1, 0], [0.5, 0.5], [0, 1]])
    act = np.zeros((2, 2, 2), np.float32)
    act[..., 0] = [[0, 2], [4, 6]]  # channel 1 stays constant: its mask is all zero
    masks = np.asarray(score_cam_masks(act, (3, 3)))
    np.testing.assert_allclose(masks[0], np.array([[0, 1, 2], [2, 3, 4], [4, 5, 6]]) / 6, atol=1e-6)
    np.testing.assert_array_equal(masks[1], 0)


def test_batch_size_does_not_change_the_maps(setup):
    net, params, x, _, label = setup
    for fn in (explain.score_cam, explain.ablation_cam):
        np.testing.assert_allclose(fn(net, params, x, label, layer="conv1", batch_size=7),
                                   fn(net, params, x, label, layer="conv1"), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        explain.score_cam(net, params, x, label, layer="conv1", batch_size=0)
    with pytest.raises(ValueError, match="spatial layer"):
        explain.ablation_cam(net, params, x, label, layer="fc")


def test_chunk_loop_runs_the_chunks_up_to_count_and_overlaps_the_last():
    import jax.numpy as jnp

    from jaxfool.explain._common import chunk_loop

    calls = jnp.arange(10.0)
    rows = lambda start: jax.lax.dynamic_slice_in_dim(calls, start, 4) + 100  # noqa: E731
    # chunks start at 0, 4 and min(8, 10 - 4) = 6: every row written, none padded
    np.testing.assert_array_equal(chunk_loop(rows, 10, 4), np.arange(10) + 100)
    # count 5: only the chunks covering rows 0-4 run (starts 0, 4); rows 8, 9 are never computed
    np.testing.assert_array_equal(jax.jit(lambda c: chunk_loop(rows, 10, 4, count=c))(5),
                                  [100, 101, 102, 103, 104, 105, 106, 107, 0, 0])


def test_score_cam_skips_dead_channels_exactly(setup):
    """Channels forced to 0 after the ReLU (every third of conv1's 64: zero kernel, negative bias) give all-zero
    masks: Score-CAM scores ``x * 0`` once for all of them; the map equals the un-skipped computation (every
    channel's pass) and pytorch-grad-cam's."""
    import jax.numpy as jnp

    from jaxfool.explain.perturbation_cams import score_cam_masks
    from jaxfool.models.network import forward

    net, params, x, _, _ = setup
    params = jax.tree_util.tree_map(np.array, params)
    params["conv1"]["kernel"][..., ::3] = 0.0
    params["conv1"]["bias"][::3] = -1.0
    act = forward(net, params, x[None], layers=("conv1",))[1]["conv1"][0]
    dead = np.asarray(act.max(axis=(0, 1)) == act.min(axis=(0, 1)))
    # the 22 forced channels are dead (and any the random weights kill); the live ones span several chunks of 5
    assert dead[::3].all() and (~dead).sum() > 2 * 5
    twin = torch_mnist_cnn(params)
    label = int(twin(nchw(x)).argmax())
    masks = score_cam_masks(act, x.shape[:2])  # every channel's pass, dead ones included
    scores = forward(net, params, x[None] * masks[..., None])[0][:, label]
    full = jax.nn.relu(jnp.einsum("hwc,c->hw", act, jax.nn.softmax(scores)))
    ours = explain.score_cam(net, params, x, label, layer="conv1", upsample=False, batch_size=5)
    np.testing.assert_allclose(ours, full, rtol=1e-5, atol=1e-6 * float(np.abs(full).max()))
    cam = pgc.ScoreCAM(model=twin, target_layers=[twin.relu1])
    cam.batch_size = 16
    theirs = cam(input_tensor=nchw(x), targets=[ClassifierOutputTarget(label)])[0]
    np.testing.assert_allclose(_like_pgc(ours, x.shape[:2]), theirs, atol=1e-5)
