"""The batched pretraining augmentation and the in-memory batches (issue 23): each image of a batch is
cropped as a per-image reference crops it, on hand-checkable inputs; the same seed gives the same
batches; the trainer uses them and its loss still falls."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from maelens.data import ImageDataset
from maelens.data.device_batches import DeviceBatches, device_batches, pixel_tensor
from maelens.data.pretrain_augment import BatchPretrainAugment
from maelens.train import TrainConfig, train


def ramp(n=3, size=8):
    """uint8 (n, 3, size, size): pixel (c, y, x) of image i holds 10 y + x + 3 c + i (all distinct)."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = torch.arange(3).view(3, 1, 1)
    return torch.stack([10 * y + x + 3 * c + i for i in range(n)]).to(torch.uint8)


def crop(imgs, boxes, flips, size, mode="bilinear"):
    return BatchPretrainAugment(size, interpolation=mode).apply(imgs, torch.tensor(boxes, dtype=torch.float32),
                                                                torch.tensor(flips), pixels=False)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_the_whole_box_unflipped_returns_each_image(mode):
    imgs = ramp()
    out = crop(imgs, [[1, 1, 0.5, 0.5]] * 3, [False] * 3, 8, mode)
    torch.testing.assert_close(out, imgs.float(), atol=1e-3, rtol=0)


def test_a_flip_reverses_the_columns_of_that_image_only():
    imgs = ramp()
    out = crop(imgs, [[1, 1, 0.5, 0.5]] * 3, [False, True, False], 8)
    torch.testing.assert_close(out[1], imgs[1].flip(-1).float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[[0, 2]], imgs[[0, 2]].float(), atol=1e-4, rtol=0)


def test_a_box_maps_the_expected_pixels():
    imgs = ramp(2)
    # image 0: the top-left quadrant at its own size; image 1: the bottom-right quadrant, flipped
    out = crop(imgs, [[0.5, 0.5, 0.25, 0.25], [0.5, 0.5, 0.75, 0.75]], [False, True], 4)
    torch.testing.assert_close(out[0], imgs[0, :, :4, :4].float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], imgs[1, :, 4:, 4:].flip(-1).float(), atol=1e-4, rtol=0)
    # the whole image halved: each output pixel is the mean of a 2 x 2 block (bilinear at the block's centre)
    half = crop(imgs[:1], [[1, 1, 0.5, 0.5]], [False], 4)
    torch.testing.assert_close(half[0], F.avg_pool2d(imgs[:1].float(), 2)[0], atol=1e-4, rtol=0)


def test_the_batch_equals_the_per_image_reference():
    gen = torch.Generator().manual_seed(3)
    imgs = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8, generator=gen)
    augment = BatchPretrainAugment(8)
    boxes, flips = augment.draw(6, 1.0, torch.Generator().manual_seed(0))
    batch = augment.apply(imgs, boxes, flips)
    for i in range(6):  # one image at a time: the same box, the same map
        alone = augment.apply(imgs[i:i + 1], boxes[i:i + 1], flips[i:i + 1])
        torch.testing.assert_close(batch[i:i + 1], alone, atol=1e-5, rtol=0)
    assert batch.dtype == torch.float32 and batch.shape == (6, 3, 8, 8)


def test_boxes_follow_the_requested_area_and_ratio():
    boxes, flips = BatchPretrainAugment(8).draw(4000, 1.0, torch.Generator().manual_seed(0))
    w, h, cx, cy = boxes.unbind(1)
    area, ratio = w * h, w / h
    assert area.min() >= 0.2 - 1e-6 and area.max() <= 1 + 1e-6
    assert ratio.min() >= 3 / 4 - 1e-6 and ratio.max() <= 4 / 3 + 1e-6
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    assert 0.45 < flips.float().mean() < 0.55
    # on an image twice as wide as high, a square box in pixels spans half as much of the width
    wide, _ = BatchPretrainAugment(8, ratio=(1, 1)).draw(10, 2.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(wide[:, 0] * 2, wide[:, 1])


def test_normalisation_matches_the_evaluation_transform():
    from maelens.data import eval_transform

    imgs = ramp(2)
    out = BatchPretrainAugment(8, augment=False)(imgs)
    reference = torch.stack([eval_transform(8)(img) for img in imgs])
    torch.testing.assert_close(out, reference, atol=1e-6, rtol=0)


def dataset(n=24, size=16, train=True):
    pixels = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return ImageDataset.from_arrays(pixels, np.arange(n) % 3, image_size=size, train=train)


def test_batches_follow_the_sampler_and_the_seed():
    data = dataset()
    order = [5, 3, 9, 1, 0, 2, 7, 8, 4]
    runs = [list(device_batches(data, order, 4, generator=torch.Generator().manual_seed(7))) for _ in range(2)]
    assert len(runs[0]) == 2  # 9 indices, batches of 4, the incomplete last one dropped
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    other = list(device_batches(data, order, 4, generator=torch.Generator().manual_seed(8)))
    assert not torch.equal(other[0], runs[0][0])
    # without augmentation: exactly the dataset's items, in the sampler's order
    plain = device_batches(dataset(train=False), order, 4)
    first = next(iter(plain))
    reference = torch.stack([dataset(train=False)[i][0] for i in order[:4]])
    torch.testing.assert_close(first, reference, atol=1e-6, rtol=0)


def test_what_keeps_a_data_loader():
    data = dataset()
    assert isinstance(device_batches(Subset(data, [4, 2, 0, 1]), range(4), 2), DeviceBatches)
    plain = dataset(train=False)
    first = next(iter(device_batches(Subset(plain, [4, 2, 0, 1]), [1, 0, 3, 2], 2)))  # a Subset's order
    torch.testing.assert_close(first, torch.stack([plain[2][0], plain[4][0]]), atol=1e-6, rtol=0)
    assert device_batches(torch.utils.data.TensorDataset(torch.zeros(4, 3, 8, 8)), range(4), 2) is None
    small = ImageDataset.from_arrays(np.zeros((4, 16, 16, 3), np.uint8), image_size=8, train=False)
    assert device_batches(small, range(4), 2) is None  # the evaluation transform resizes: not done here
    grey = pixel_tensor(np.arange(8, dtype=np.uint8).reshape(2, 2, 2, 1))
    assert grey.shape == (2, 3, 2, 2) and torch.equal(grey[:, 0], grey[:, 2])


def test_training_on_device_batches_lowers_the_loss(tmp_path):
    cfg = TrainConfig(preset="tiny", epochs=6, batch_size=16, warmup_epochs=1, blr=5e-3, quiet=True,
                      out=str(tmp_path / "run"), recon_images=0, masking="grid")
    result = train(cfg, dataset=dataset(n=64, size=32))
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < 0.8 * losses[0]


def test_resume_draws_the_same_crops(tmp_path):
    # the first epoch lies in the warm-up of both schedules, so the 1-epoch run is the 3-epoch run cut short
    base = dict(preset="tiny", batch_size=16, warmup_epochs=1, blr=5e-3, quiet=True, recon_images=0)
    full = train(TrainConfig(epochs=3, out=str(tmp_path / "full"), **base), dataset=dataset(n=32, size=32))
    train(TrainConfig(epochs=1, out=str(tmp_path / "part"), **base), dataset=dataset(n=32, size=32))
    resumed = train(TrainConfig(epochs=3, out=str(tmp_path / "part"), resume="auto", **base),
                    dataset=dataset(n=32, size=32))
    assert [r["loss"] for r in resumed.history] == pytest.approx([r["loss"] for r in full.history], rel=1e-6)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_a_data_loader_batch_of_the_evaluation_transform_equals_the_items():
    from torch.utils.data import DataLoader

    data = dataset(n=10, train=False)
    batch, labels = next(iter(DataLoader(Subset(data, [7, 2, 5, 0]), batch_size=4)))
    items = [data[i] for i in (7, 2, 5, 0)]
    torch.testing.assert_close(batch, torch.stack([img for img, _ in items]), atol=1e-6, rtol=0)
    assert labels.tolist() == [label for _, label in items]
    augmented = dataset(n=10, train=True)
    assert len(augmented.__getitems__([1, 2])) == 2  # item by item (each draws its own crop)


def test_batched_evaluation_items_equal_item_by_item_bit_for_bit():
    """ImageDataset.__getitems__ (one batched normalisation) gives exactly the per-item transform's values."""
    import torch

    from maelens.data import load_dataset

    data = load_dataset("bundled", image_size=32, split="test", limit=10)
    one_by_one = torch.stack([data[i][0] for i in range(10)])
    batched = torch.stack([img for img, _ in data.__getitems__(list(range(10)))])
    assert torch.equal(one_by_one, batched)
