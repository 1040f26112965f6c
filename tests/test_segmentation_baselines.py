"""The colour lookup baseline (issue 24) on images whose answer was worked out by hand."""

import numpy as np
import pytest

from maelens.segmentation.baselines import ColourLookup, colour_lookup_scores, patch_vote, quantise

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _image(rows):
    return np.array([rows], dtype=np.uint8)


def test_quantise_cells():
    assert quantise(np.array([[0, 0, 0], [255, 255, 255], [16, 0, 15]], np.uint8)).tolist() == [0, 4095, 256]


def test_lookup_and_vote_by_hand():
    # training: red x8 and green x3 are class 0, blue x4 and green x1 class 1
    train = _image([[RED] * 4, [RED] * 4, [BLUE] * 4, [GREEN, GREEN, GREEN, GREEN]])
    train_mask = np.array([[[0] * 4, [0] * 4, [1] * 4, [0, 0, 0, 1]]])
    lookup = ColourLookup.fit(train, train_mask, 2)
    # red -> 0, blue -> 1, green -> 0 (3 against 1), white (never seen) -> 0 (11 pixels against 5)
    assert lookup.predict(_image([[RED, BLUE, GREEN, WHITE]])).tolist() == [[[0, 1, 0, 0]]]
    test = _image([[RED, RED, BLUE, BLUE], [GREEN] * 4, [WHITE] * 4, [BLUE] * 4])
    test_mask = np.array([[[0, 0, 1, 1], [1] * 4, [0] * 4, [1] * 4]])
    s = colour_lookup_scores(train, train_mask, test, test_mask, 2, patch=2)
    # 12 of 16 right; class 0: 6 right, 4 false positives -> IoU 6/10; class 1: 6 right, 4 missed -> 6/10
    assert s.pixel_accuracy == pytest.approx(0.75) and s.miou == pytest.approx(0.6)
    # every 2x2 block of the prediction is all 0 or a 2-2 tie (-> 0): all class 0, 6 of 16 right;
    # IoU 0 = 6/16, IoU 1 = 0
    assert s.vote_pixel_accuracy == pytest.approx(6 / 16) and s.vote_miou == pytest.approx(6 / 32)
    assert (s.train_pixels, s.test_pixels) == (16, 16)


def test_ignored_pixels_count_nowhere():
    train = _image([[RED, BLUE]])
    lookup = ColourLookup.fit(train, np.array([[[0, 255]]]), 2)
    assert lookup.counts.sum() == 1
    s = colour_lookup_scores(train, np.array([[[0, 1]]]), _image([[RED, BLUE]]), np.array([[[0, 255]]]), 2, patch=1)
    assert s.pixel_accuracy == 1.0 and s.test_pixels == 1


def test_patch_vote_majority():
    labels = np.array([[[1, 1, 2, 2], [1, 0, 2, 2]]])
    assert patch_vote(labels, 3, patch=2).tolist() == [[[1, 1, 2, 2], [1, 1, 2, 2]]]
    with pytest.raises(ValueError, match="multiples of patch=4"):
        patch_vote(labels, 3, patch=4)


def test_frozen_arm_trains_the_decoder_only():
    import torch

    from maelens.segmentation.frozen import train_frozen_decoder
    from maelens.segmentation.model import segmenter_from_scratch

    torch.manual_seed(0)
    seg = segmenter_from_scratch("tiny", 3)
    data = [(torch.randn(3, 32, 32), torch.randint(0, 3, (32, 32))) for _ in range(8)]
    encoder = {k: v.clone() for k, v in seg.encoder.state_dict().items()}
    decoder = {k: v.clone() for k, v in seg.decoder.state_dict().items()}
    result = train_frozen_decoder(seg, data, data[:4], epochs=2, batch_size=4, lr=1e-2, seed=0)
    assert [h["epoch"] for h in result.history] == [0, 1] and result.final == result.history[-1]
    assert all(torch.equal(v, seg.encoder.state_dict()[k]) for k, v in encoder.items())
    assert any(not torch.equal(v, seg.decoder.state_dict()[k]) for k, v in decoder.items())
    assert 0 <= result.final["miou"] <= 1 and result.final["eval_loss"] > 0
