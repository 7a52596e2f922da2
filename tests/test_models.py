"""The article's networks: layer names and shapes, logits out, and the input normalisation."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from grandtour.models import INPUT_SHAPES, MEAN_STD, build_model, normalize  # noqa: E402

MNIST = [
    ("conv1", (10, 24, 24)),
    ("pool1", (10, 12, 12)),
    ("relu1", (10, 12, 12)),
    ("conv2", (20, 8, 8)),
    ("pool2", (20, 4, 4)),
    ("relu2", (20, 4, 4)),
    ("flatten", (320,)),
    ("fc1", (50,)),
    ("relu3", (50,)),
    ("fc2", (10,)),
    ("relu4", (10,)),
]
CIFAR = [
    ("conv1", (10, 28, 28)),
    ("relu1", (10, 28, 28)),
    ("pool1", (10, 14, 14)),
    ("conv2", (20, 10, 10)),
    ("relu2", (20, 10, 10)),
    ("pool2", (20, 5, 5)),
    ("flatten", (500,)),
    ("fc1", (120,)),
    ("relu3", (120,)),
    ("fc2", (84,)),
    ("relu4", (84,)),
    ("fc3", (10,)),
]
DIGITS = [
    ("conv1", (10, 8, 8)),
    ("pool1", (10, 4, 4)),
    ("relu1", (10, 4, 4)),
    ("conv2", (20, 4, 4)),
    ("pool2", (20, 2, 2)),
    ("relu2", (20, 2, 2)),
    ("flatten", (80,)),
    ("fc1", (50,)),
    ("relu3", (50,)),
    ("fc2", (10,)),
    ("relu4", (10,)),
]


def _shapes(model, input_shape):
    """(name, per-example output shape) of each child, by running them one after another."""
    x = torch.randn(3, *input_shape)
    out = []
    with torch.no_grad():
        for name, child in model.named_children():
            x = child(x)
            out.append((name, tuple(x.shape[1:])))
    return out


@pytest.mark.parametrize(
    "dataset, expected",
    [("mnist", MNIST), ("fashion-mnist", MNIST), ("cifar10", CIFAR), ("digits", DIGITS)],
)
def test_layer_names_and_shapes(dataset, expected):
    assert _shapes(build_model(dataset), INPUT_SHAPES[dataset]) == expected


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "digits"])
def test_logit_relu_is_the_last_layer_and_can_be_dropped(dataset):
    torch.manual_seed(0)
    with_relu = build_model(dataset)
    torch.manual_seed(0)
    without = build_model(dataset, logit_relu=False)
    names = [n for n, _ in without.named_children()]
    assert names == [n for n, _ in with_relu.named_children()][:-1]
    assert names[-1] == "fc2"
    x = torch.randn(64, *INPUT_SHAPES[dataset])
    with torch.no_grad():
        logits, clipped = without(x), with_relu(x)
    # Same weights: the ReLU network's output is exactly the clipped logits.
    assert (logits < 0).any()
    torch.testing.assert_close(clipped, logits.clamp_min(0))


def test_cifar_net_has_no_logit_relu_either_way():
    names = [n for n, _ in build_model("cifar10", logit_relu=False).named_children()]
    assert names == [n for n, _ in build_model("cifar10").named_children()]
    assert names[-1] == "fc3"


@pytest.mark.parametrize("dataset", sorted(INPUT_SHAPES))
def test_models_output_logits_not_probabilities(dataset):
    torch.manual_seed(1)
    model = build_model(dataset, logit_relu=False)
    assert not any(isinstance(m, (torch.nn.Softmax, torch.nn.LogSoftmax)) for m in model.modules())
    with torch.no_grad():
        out = model(torch.randn(5, *INPUT_SHAPES[dataset]))
    assert out.shape == (5, 10)
    assert not torch.allclose(out.sum(1), torch.ones(5))


def test_build_model_rejects_unknown_dataset():
    with pytest.raises(ValueError, match="mnist"):
        build_model("imagenet")


@pytest.mark.parametrize("dataset", sorted(INPUT_SHAPES))
def test_normalize_is_per_channel_standardisation(dataset):
    c, h, w = INPUT_SHAPES[dataset]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, c, h, w), dtype=np.uint8)
    out = normalize(x, dataset)
    assert out.dtype == torch.float32 and out.shape == x.shape
    mean, std = MEAN_STD[dataset]
    for ch in range(c):
        expected = (x[:, ch].astype(np.float64) / 255 - mean[ch]) / std[ch]
        np.testing.assert_allclose(out[:, ch].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_normalize_maps_the_channel_mean_to_zero():
    # A pixel at each channel's mean intensity becomes ~0 (uint8 rounding: < 0.5/255/std).
    mean, std = MEAN_STD["cifar10"]
    x = np.stack([np.full((2, 2), round(m * 255), np.uint8) for m in mean])[None]
    out = normalize(x, "cifar10")
    for ch in range(3):
        assert abs(out[0, ch]).max() < 0.5 / 255 / std[ch] + 1e-6


def test_normalize_accepts_tensors_and_rejects_bad_input():
    x = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    torch.testing.assert_close(normalize(x, "mnist"), normalize(x.numpy(), "mnist"))
    with pytest.raises(ValueError, match="uint8"):
        normalize(x.float(), "mnist")
    with pytest.raises(ValueError, match="shape"):
        normalize(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "mnist")
    with pytest.raises(ValueError, match="unknown dataset"):
        normalize(x, "svhn")


def test_digits_constants_match_the_data():
    # The fixed digits constants are the statistics of scikit-learn's bundled images
    # (0..16 scaled to 0..255); a wrong constant would off-centre every digits run.
    datasets = pytest.importorskip("sklearn.datasets")
    images = datasets.load_digits().images
    scaled = np.round(images * 255 / 16) / 255
    (mean,), (std,) = MEAN_STD["digits"]
    assert abs(scaled.mean() - mean) < 1e-3
    assert abs(scaled.std() - std) < 1e-3
    out = normalize(np.round(images * 255 / 16).astype(np.uint8)[:, None], "digits")
    assert abs(float(out.mean())) < 1e-3 and abs(float(out.std()) - 1) < 1e-3
