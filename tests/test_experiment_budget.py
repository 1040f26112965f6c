"""FLOPs of one training step (experiments/budget.py) against a count worked out by hand."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))

from budget import Budget, mae_step_flops, simclr_step_flops  # noqa: E402


def test_tiny_mae_step_flops_by_hand():
    """``tiny``: 32 px, patch 4 (64 patches of 48 values, 16 visible), encoder 3 blocks of width 64 (MLP 128) on
    17 tokens, decoder 4 blocks of width 48 (MLP 96) on 65 tokens. Multiply-accumulates of the forward pass:
    patch embedding 64*48*64 = 196,608; per encoder block qkv 17*64*192 + scores and weighted sum 2*17*17*64
    + projection 17*64*64 + MLP 2*17*64*128 = 594,048 (x3); decoder embedding 17*64*48 = 52,224; per decoder
    block 65*48*144 + 2*65*65*48 + 65*48*48 + 2*65*48*96 = 1,603,680 (x4); prediction 65*48*48 = 149,760.
    In all 8,595,456 MACs = 17,190,912 FLOPs forward; the backward pass costs twice the forward (gradients of
    inputs and weights) except the patch embedding's input gradient (the image needs none, 2*196,608 FLOPs):
    3 * 17,190,912 - 393,216 = 51,179,520 per image."""
    assert mae_step_flops("tiny") == 51_179_520


def test_simclr_step_flops_grow_with_the_image_and_budget_arithmetic():
    small, large = simclr_step_flops(img_size=32), simclr_step_flops(img_size=64)
    # the convolutions scale with the pixels (4x); the projection head does not
    assert 3.8 < large / small < 4.0
    b = Budget("mae", epochs=2, steps=10, batch_size=32, images_seen=320, flops_per_image=1e6)
    assert b.total_flops == 3.2e8 and b.to_dict()["total_flops"] == 3.2e8
