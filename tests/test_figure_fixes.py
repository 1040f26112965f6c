"""The figure defects of issue 27, each checked on the Figure drawn (its artists), not by eye only."""

import numpy as np
import torch

import maelens
from maelens.analysis.reconstruction import reconstruct
from maelens.plots.evaluate import class_colours
from maelens.plots.layers import plot_cka, plot_token_stats
from maelens.plots.reconstruction import reconstruction_figure
from maelens.plots.rollout import plot_rollout
from maelens.plots.segmentation import eval_loss_figure, training_curves_figure
from maelens.plots.training import plot_training_curves


def test_reconstruction_rows_carry_the_rgb_masked_mse_worked_by_hand():
    torch.manual_seed(0)
    model = maelens.create_model("tiny").eval()
    imgs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    rec = reconstruct(model, imgs, mask_ratio=0.75, masking="grid")
    p = model.config.patch_size
    removed = rec.mask.bool()  # (B, L)
    # by hand: the squared RGB difference of every removed patch's pixels, averaged over its pixels and channels
    diff = ((rec.reconstruction - rec.original) ** 2).unfold(2, p, p).unfold(3, p, p)  # B, 3, gh, gw, p, p
    per_patch = diff.permute(0, 2, 3, 1, 4, 5).reshape(2, -1, 3 * p * p).mean(-1)
    want = torch.stack([per_patch[b][removed[b]].mean() for b in range(2)])
    torch.testing.assert_close(rec.rgb_mse, want, rtol=1e-5, atol=1e-7)
    fig = reconstruction_figure(rec)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == [f"masked MSE {float(v):.4f}" for v in rec.rgb_mse]
    assert any("Grey: removed patches" in t.get_text() for t in fig.texts)


def test_cka_scale_spans_the_values_measured():
    matrix = np.array([[1.0, 0.93], [0.93, 1.0]])
    fig = plot_cka(matrix, ["a", "b"], ["a", "b"])
    image = fig.axes[0].images[0]
    assert image.get_clim() == (0.9, 1.0)  # 0.93 rounded down to 0.05, not 0
    low = plot_cka(np.array([[1.0, 0.2], [0.2, 1.0]]), ["a", "b"], ["a", "b"]).axes[0].images[0]
    assert low.get_clim() == (0.2, 1.0)


def test_token_stats_leave_empty_bins_out_and_do_not_join_encoder_to_decoder():
    layers = [{"layer": n, "threshold": 3.0, "median": m, "outlier_share": s}
              for n, m, s in (("encoder.0", 1.0, 0.1), ("encoder.1", 2.0, 0.2), ("decoder.0", 3.0, 0.3))]
    counts = np.array([[0, 5, 0, 2], [1, 0, 3, 0], [2, 2, 2, 2]])
    edges = np.tile(np.arange(5.0), (3, 1))
    fig = plot_token_stats(layers, counts, edges, np.zeros((3, 2, 2)))
    hist, by_layer = fig.axes[0], fig.axes[1]
    drawn = hist.get_lines()[0].get_ydata()
    assert np.isnan(drawn[[0, 2]]).all() and list(drawn[[1, 3]]) == [5, 2]  # no floor at 0.5 for empty bins
    medians = [np.asarray(line.get_xdata()).tolist() for line in by_layer.get_lines() if line.get_marker() == "o"]
    assert medians == [[0, 1], [2]]  # an encoder line and a decoder point, not one line through both


def test_rollout_has_a_colour_bar_and_names_row_and_column():
    fig = plot_rollout(np.zeros((16, 16, 3)), np.random.rand(4, 4), np.random.rand(4, 4), patch=(3, 1))
    titles = [ax.get_title() for ax in fig.axes]
    assert "rollout: patch (row 3, col 1)" in titles
    assert any("lowest patch" in ax.get_ylabel() for ax in fig.axes)  # the colour bar's label


def test_epochs_are_counted_from_zero_with_whole_ticks():
    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "eval_loss": 1.0, "pixel_accuracy": 0.5, "miou": 0.3}
               for e in range(3)]
    fig = training_curves_figure(history)
    assert fig.axes[0].get_lines()[0].get_xdata().tolist() == [0, 1, 2]
    ticks = fig.axes[0].xaxis.get_major_locator().tick_values(0, 2)
    assert np.allclose(ticks, np.round(ticks))
    assert "counted from 0" in fig.axes[0].get_xlabel()
    assert eval_loss_figure({"a": [1.0, 0.5]}).axes[0].get_lines()[0].get_xdata().tolist() == [0, 1]


def test_class_colours_are_distinct_and_strong_first():
    colours = class_colours(13)
    assert len({tuple(np.round(c, 4)) for c in colours}) == 13
    # the first ten are tab20's strong shades: darker on average than the three light ones that follow
    assert colours[:10].mean() < colours[10:].mean()


def test_training_curves_from_log_records():
    records = [{"kind": "step", "epoch": 0, "step": s, "loss": 1.0 / s, "lr": 1e-4 * s} for s in range(1, 5)]
    records.append({"kind": "epoch", "epoch": 0, "step": 4, "loss": 0.5, "lr": 4e-4})
    fig = plot_training_curves(records)
    loss_ax, lr_ax = fig.axes
    assert loss_ax.get_lines()[0].get_xdata().tolist() == [1, 2, 3, 4]
    assert loss_ax.get_lines()[1].get_ydata().tolist() == [0.5]
    assert np.allclose(lr_ax.get_lines()[0].get_ydata(), [1e-4, 2e-4, 3e-4, 4e-4])
