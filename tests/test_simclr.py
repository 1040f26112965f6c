"""SimCLR's parts (IPOL sec. 6; Chen et al. 2020): the NT-Xent loss against a hand-worked example and a direct
formula, the paper's parameter count, the batched augmentations against torchvision's per-image ones, and
one optimisation step."""

import math

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from maelens.data import augment as A
from maelens.errors import ConfigError
from maelens.models.contrastive import nt_xent_loss
from maelens.models.simclr import create_simclr
from maelens.models.simclr_config import SimCLRConfig, get_simclr_config


# ---- NT-Xent ------------------------------------------------------------------------------------
def test_nt_xent_on_a_hand_worked_example():
    # N = 2 images, two views each, tau = 1; z = [a1, a2, b1, b2] with (a_k, b_k) the positive pairs:
    # a1 = (1, 0), a2 = (0, 1), b1 = (3, 0) (cosine ignores the length: same direction as a1), b2 = (-1, 0).
    # cosine similarities: a1.a2 = 0, a1.b1 = 1, a1.b2 = -1, a2.b1 = 0, a2.b2 = 0, b1.b2 = -1.
    #   l(a1) = -log(e^1 / (e^0 + e^1 + e^-1)) = log(1 + e^-1 + e^-2)  (denominator: a2, b1, b2)
    #   l(a2) = -log(e^0 / (e^0 + e^0 + e^0)) = log 3                  (a1, b1, b2; positive b2 at 0)
    #   l(b1) = -log(e^1 / (e^1 + e^0 + e^-1)) = log(1 + e^-1 + e^-2)  (a1, a2, b2)
    #   l(b2) = -log(e^0 / (e^-1 + e^0 + e^-1)) = log(1 + 2 e^-1)      (a1, a2, b1; positive a2)
    # L = (2 * 0.4076060 + 1.0986123 + 0.5514447) / 4 = 0.6163172
    z_a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_b = torch.tensor([[3.0, 0.0], [-1.0, 0.0]])
    e = math.e
    expected = (2 * math.log(1 + 1 / e + 1 / e**2) + math.log(3) + math.log(1 + 2 / e)) / 4
    assert expected == pytest.approx(0.6163172, abs=1e-7)
    assert nt_xent_loss(z_a, z_b, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)
    # the temperature divides every similarity: at tau = 0.5 the same example is l with sims doubled
    t = 0.5
    halved = (2 * math.log(1 + e**(-1 / t) + e**(-2 / t)) + math.log(3) + math.log(1 + 2 * e**(-1 / t))) / 4
    assert nt_xent_loss(z_a, z_b, temperature=t).item() == pytest.approx(halved, abs=1e-6)


def direct_nt_xent(z_a: np.ndarray, z_b: np.ndarray, tau: float) -> float:
    """The paper's equation term by term: l(i, j) for every anchor i of the 2N views, averaged."""
    z = np.concatenate([z_a, z_b]).astype(np.float64)
    n2, n = len(z), len(z_a)

    def sim(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    total = 0.0
    for i in range(n2):
        j = i + n if i < n else i - n
        denominator = sum(math.exp(sim(z[i], z[k]) / tau) for k in range(n2) if k != i)
        total += -math.log(math.exp(sim(z[i], z[j]) / tau) / denominator)
    return total / n2


def test_nt_xent_equals_the_direct_formula_and_its_bounds():
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    for tau in (0.1, 0.5, 2.0):
        assert nt_xent_loss(z_a, z_b, tau).item() == pytest.approx(direct_nt_xent(z_a.numpy(), z_b.numpy(), tau),
                                                                   rel=1e-5)
    # identical views of orthogonal images: the positive dominates as tau -> 0, the loss goes to 0;
    # with all views equal every one of the 2N - 1 candidates is alike: loss log(2N - 1)
    eye = torch.eye(4)
    assert nt_xent_loss(eye, eye, 0.01).item() < 1e-6
    same = torch.ones(4, 3)
    assert nt_xent_loss(same, same, 0.5).item() == pytest.approx(math.log(7), rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(z_a, z_b[:4])


# ---- the model ------------------------------------------------------------------------------------
def test_the_paper_parameter_count_is_resnet18_with_the_projection_head():
    model = create_simclr("simclr-r18")
    assert model.num_trainable_parameters() == 11_504_832  # IPOL sec. 6
    assert sum(p.numel() for p in model.backbone.parameters()) == 11_176_512  # torchvision resnet18 without fc
    assert sum(p.numel() for p in model.projector.parameters()) == 512 * 512 + 512 + 512 * 128 + 128
    cifar = create_simclr(stem="cifar", img_size=32)
    assert cifar.num_trainable_parameters() == 11_504_832 - 64 * 3 * (7 * 7 - 3 * 3)
    x = torch.rand(2, 3, 32, 32)
    cifar.eval()
    assert cifar.features(x).shape == (2, 512) and cifar(x).shape == (2, 128)


def test_config_round_trip_and_refusals():
    config = get_simclr_config("simclr-r18", temperature=0.2, stem="cifar")
    assert SimCLRConfig.from_dict(config.to_dict()) == config and config.to_dict()["method"] == "simclr"
    with pytest.raises(ConfigError, match="unknown SimCLR preset"):
        get_simclr_config("simclr-r34")
    with pytest.raises(ConfigError, match="unknown SimCLR model option"):
        get_simclr_config("simclr-r18", embed_dim=3)
    with pytest.raises(ConfigError, match="temperature"):
        get_simclr_config("simclr-r18", temperature=0.0)


# ---- augmentations --------------------------------------------------------------------------------
@pytest.fixture
def images():
    return torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_augmentation_keeps_shape_dtype_range_and_is_seeded(images):
    augment = A.SimCLRAugment(16, blur_prob=0.5)
    out = augment(images, torch.Generator().manual_seed(3))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    again = augment(images, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    assert not torch.equal(out, augment(images, torch.Generator().manual_seed(4)))
    # a larger input comes out at the configured size; double precision stays double
    big = A.SimCLRAugment(8)(images.double(), torch.Generator().manual_seed(0))
    assert big.shape == (6, 3, 8, 8) and big.dtype == torch.float64
    with pytest.raises(ValueError, match="float RGB"):
        augment((images * 255).to(torch.uint8))


def test_each_colour_operation_matches_torchvision_image_by_image(images):
    factors = torch.tensor([0.0, 0.3, 0.9, 1.0, 1.2, 1.4])
    shifts = torch.tensor([-0.5, -0.1, 0.0, 0.05, 0.2, 0.33])
    for ours, theirs, values in ((A.adjust_brightness, TF.adjust_brightness, factors),
                                 (A.adjust_contrast, TF.adjust_contrast, factors),
                                 (A.adjust_saturation, TF.adjust_saturation, factors),
                                 (A.adjust_hue, TF.adjust_hue, shifts)):
        expected = torch.stack([theirs(img, float(v)) for img, v in zip(images, values)])
        torch.testing.assert_close(ours(images, values), expected, atol=2e-6, rtol=0, msg=ours.__name__)
    torch.testing.assert_close(A.grayscale(images), TF.rgb_to_grayscale(images), atol=1e-6, rtol=0)
    # HSV round trip, grey pixels included
    probe = torch.cat([images, torch.full((1, 3, 16, 16), 0.5)])
    torch.testing.assert_close(A.hsv_to_rgb(A.rgb_to_hsv(probe)), probe, atol=1e-6, rtol=0)


def test_blur_matches_torchvision_and_the_kernel_is_ten_percent(images):
    sigmas = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.8])
    expected = torch.stack([TF.gaussian_blur(img, [5, 5], [float(s)] * 2) for img, s in zip(images, sigmas)])
    torch.testing.assert_close(A.gaussian_blur(images, sigmas, 5), expected, atol=1e-6, rtol=0)
    assert [A.gaussian_kernel_size(s) for s in (16, 32, 64, 224)] == [3, 3, 7, 23]


def test_crop_boxes_and_resized_crop(images):
    boxes = A.crop_boxes(2000, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(0))
    w, h, cx, cy = boxes.unbind(1)
    assert (w * h >= 0.08 - 1e-6).all() and (w * h <= 1 + 1e-6).all()
    ratio = w / h
    assert (ratio >= 3 / 4 - 1e-5).all() and (ratio <= 4 / 3 + 1e-5).all()
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    assert (cy - h / 2 >= -1e-6).all() and (cy + h / 2 <= 1 + 1e-6).all()
    whole = torch.tensor([[1.0, 1.0, 0.5, 0.5]]).repeat(6, 1)
    none, every = torch.zeros(6, dtype=torch.bool), torch.ones(6, dtype=torch.bool)
    torch.testing.assert_close(A.resized_crop(images, whole, none, 16), images, atol=1e-5, rtol=0)
    torch.testing.assert_close(A.resized_crop(images, whole, every, 16), images.flip(-1), atol=1e-5, rtol=0)
    # the top-left quarter upsampled x2: inside the box, bilinear resizing of that quarter
    quarter = torch.tensor([[0.5, 0.5, 0.25, 0.25]]).repeat(6, 1)
    expected = TF.resize(images[..., :8, :8], [16, 16], antialias=False)
    got = A.resized_crop(images, quarter, none, 16)
    torch.testing.assert_close(got[..., :-1, :-1], expected[..., :-1, :-1], atol=1e-5, rtol=0)


# ---- one step -----------------------------------------------------------------------------------
def test_one_optimisation_step_lowers_the_loss():
    torch.manual_seed(0)
    model = create_simclr(img_size=32)
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    augment = A.SimCLRAugment(32)
    g = torch.Generator().manual_seed(0)
    views = torch.cat([augment(images, g), augment(images, g)])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        z_a, z_b = model(views).chunk(2)
        return nt_xent_loss(z_a, z_b, 0.5)

    before = loss()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


def test_the_augmentation_is_derived_from_the_model_config():
    from maelens.data.augment import SimCLRAugment
    from maelens.models.simclr_config import get_simclr_config

    config = get_simclr_config("simclr-r18", img_size=24, blur_prob=0.0, jitter_strength=1.0)
    augment = SimCLRAugment.from_config(config)
    assert augment.size == 24 and augment.blur_prob == 0.0 and augment.jitter_strength == 1.0
    assert augment.crop_scale == config.crop_scale and augment.gray_prob == config.gray_prob
    # one set of defaults: an augmentation built without a config is the default model's
    assert SimCLRAugment.from_config(get_simclr_config("simclr-r18")) == SimCLRAugment(
        get_simclr_config("simclr-r18").img_size)
