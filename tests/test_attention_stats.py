"""Streaming dataset-level attention statistics: hand-built pooling, wiring to the hooks, batch-size
invariance, determinism, plots."""

import json
from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from maelens.analysis.attention import (
    global_attention,
    importance,
    importance_ranks,
    influencers,
    mean_attention_distance,
    patch_distances,
    wilson_interval,
)
from maelens.analysis.attention_dataset import (
    AttentionAccumulator,
    BatchAttention,
    analyse_batch,
    attention_stats,
    influence_fields,
)
from maelens.analysis.hooks import AttentionRecorder
from maelens.errors import ConfigError, DataError
from maelens.io import to_json
from maelens.models import create_model

# 3 x 3 grid, visible = {0, 8} in every image.
#   A: important {0, 8}, ranks 0 -> 0, 8 -> 1; influencers as in test_attention_metrics:
#      [0, 0, -1, 0, 8, -1, 0, 8, 8]: 5 influenced, 4 local (1, 3, 4, 7), 2 black of 7.
#   B: important {0, 8}, ranks 8 -> 0, 0 -> 1; everyone influenced: [0, 8, 8, 0, 8, 8, 0, 8, 8]:
#      local = 3<-0, 4<-8, 5<-8, 7<-8 (1<-8, 2<-8, 6<-0 are two steps away) -> 4 of 7, 0 black.
#   C: important {0, 1} (inconsistent), ranks 0 -> 0, 1 -> 1; all 7 others black.
RANKS = {"A": [0, 2, 3, 4, 5, 6, 7, 8, 1], "B": [1, 2, 3, 4, 5, 6, 7, 8, 0], "C": [0, 1, 2, 3, 4, 5, 6, 7, 8]}
INFL = {"A": [0, 0, -1, 0, 8, -1, 0, 8, 8], "B": [0, 8, 8, 0, 8, 8, 0, 8, 8], "C": [0, 1] + [-1] * 7}


def hand_batch(layers):
    """BatchAttention for ``layers``: a list (per layer) of image names."""
    ranks = torch.tensor([[RANKS[name] for name in images] for images in layers])
    visible = torch.zeros(len(layers[0]), 9, dtype=torch.bool)
    visible[:, [0, 8]] = True
    zeros = torch.zeros(len(layers), len(layers[0]), 2)
    return BatchAttention(visible=visible, ranks=ranks, important=ranks < 2,
                          influencer=torch.tensor([[INFL[name] for name in images] for images in layers]),
                          distance={"decoder": zeros}, entropy={"decoder": zeros})


@pytest.mark.parametrize("split", [False, True])
def test_accumulator_pools_hand_counts(split):
    acc = AttentionAccumulator((3, 3), 2)
    layers = [["A", "B", "C"], ["C", "C", "A"]]
    if split:  # the same images streamed as two batches
        acc.update(hand_batch([row[:2] for row in layers]))
        acc.update(hand_batch([row[2:] for row in layers]))
    else:
        acc.update(hand_batch(layers))
    rep = acc.report({"mask": "grid"})
    l0, l1 = rep.layers
    assert l0["images"] == 3 and l0["consistent_images"] == 2
    assert l0["consistency"] == pytest.approx(2 / 3)
    assert l0["consistency_ci"] == pytest.approx(list(wilson_interval(2, 3)))
    assert l0["soft_consistency"] == pytest.approx(5 / 6)  # overlaps 2, 2, 1 of k = 2
    # Consistent images only (A, B): locality (4 + 4) / (5 + 7), black (2 + 0) / (7 + 7).
    assert (l0["local_patches"], l0["influenced_patches"], l0["locality_images"]) == (8, 12, 2)
    assert l0["locality"] == pytest.approx(8 / 12)
    assert (l0["black_patches"], l0["non_important_patches"]) == (2, 14)
    assert l0["black_fraction"] == pytest.approx(2 / 14)
    assert l0["locality_ci"][0] < 8 / 12 < l0["locality_ci"][1]
    # Layer 1 (C, C, A): only A is consistent.
    assert l1["consistent_images"] == 1 and l1["locality"] == pytest.approx(4 / 5)
    assert l1["black_fraction"] == pytest.approx(2 / 7)
    # Positional counts, layer 0: rank 0 at 0 (A), 8 (B), 0 (C); rank 1 at 8 (A), 0 (B), 1 (C).
    counts = rep.positional_counts[0]
    assert counts.shape == (2, 9)
    assert counts[0].tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert counts[1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1]
    # Null: each image spreads 1/k over its top-k set for every rank: A, B {0, 8}; C {0, 1}.
    assert acc.rank_expected[0, 0].tolist() == pytest.approx([1.5, 0.5, 0, 0, 0, 0, 0, 0, 1.0])
    assert acc.rank_expected[0, 1].tolist() == pytest.approx([1.5, 0.5, 0, 0, 0, 0, 0, 0, 1.0])
    assert rep.positional_bias["layers"][0]["counts"] == counts.tolist()


def test_accumulator_all_images():
    acc = AttentionAccumulator((3, 3), 2, all_images=True)
    acc.update(hand_batch([["A", "B", "C"], ["C", "C", "A"]]))
    l0, l1 = acc.report({}).layers
    # C has no influenced patch, so locality is unchanged; its 7 black patches now count.
    assert l0["locality"] == pytest.approx(8 / 12) and l0["black_fraction"] == pytest.approx(9 / 21)
    assert l1["locality"] == pytest.approx(4 / 5) and l1["black_fraction"] == pytest.approx(16 / 21)
    assert l0["locality_images"] == 3


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("tiny").eval()


def dataset(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 32, 32, generator=gen), torch.zeros(n, dtype=torch.long))


def test_analyse_batch_matches_full_maps(model):
    imgs = dataset(5).tensors[0]
    got = analyse_batch(model, imgs, masking="random", generator=torch.Generator().manual_seed(3), top_n=5)
    with torch.no_grad(), AttentionRecorder(model) as rec:
        out = model.encode(imgs, 0.75, masking="random", generator=torch.Generator().manual_seed(3))
        model.forward_decoder(out.tokens, out.ids_restore)
    assert torch.equal(got.visible, out.mask == 0)
    for layer, probs in enumerate(rec.maps["decoder"]):
        W = global_attention(probs)
        ranks = importance_ranks(importance(W))
        assert torch.equal(got.ranks[layer], ranks)
        important = ranks < 16
        assert torch.equal(got.important[layer], important)
        assert torch.equal(got.influencer[layer], influencers(W, important, 5))
    assert got.distance["decoder"].shape == (model.config.decoder_depth, 5, model.config.decoder_num_heads)


def test_encoder_distances_use_each_images_positions(model, monkeypatch):
    import maelens.analysis.attention_dataset as module

    # One image per recomputation chunk, so each chunk must pick its own rows of the positions.
    monkeypatch.setattr(module, "AttentionRecorder", partial(AttentionRecorder, chunk_bytes=1))
    imgs = dataset(4).tensors[0]
    got = analyse_batch(model, imgs, masking="random", generator=torch.Generator().manual_seed(5), encoder=True)
    with torch.no_grad(), AttentionRecorder(model, ("encoder",)) as rec:
        ref = model.encode(imgs, 0.75, masking="random", generator=torch.Generator().manual_seed(5))
    assert torch.equal(got.visible, ref.mask == 0)
    dist = patch_distances(ref.ids_keep, model.config.grid_size, model.config.patch_size)
    expected = torch.stack([mean_attention_distance(p, dist) for p in rec.maps["encoder"]])
    assert got.distance["encoder"].shape == (model.config.depth, 4, model.config.num_heads)
    assert torch.allclose(got.distance["encoder"], expected, rtol=1e-5)
    assert (got.entropy["encoder"] > 0).all()


def test_stats_are_deterministic_and_batch_size_invariant(model):
    ds = dataset(12)
    a = attention_stats(model, ds, masking="random", seed=7, batch_size=12, encoder=True)
    b = attention_stats(model, ds, masking="random", seed=7, batch_size=12, encoder=True)
    assert to_json(a.to_dict()) == to_json(b.to_dict())
    c = attention_stats(model, ds, masking="random", seed=8, batch_size=12)
    assert a.positional_bias["layers"][0]["counts"] != c.positional_bias["layers"][0]["counts"]
    # Grid masks do not depend on the generator, so batching cannot change any count.
    g4 = attention_stats(model, ds, masking="grid", batch_size=4)
    g12 = attention_stats(model, ds, masking="grid", batch_size=12)
    f4, f12 = g4.to_frame(), g12.to_frame()
    assert f4.drop(columns=["mean_attention_distance", "entropy"]).equals(
        f12.drop(columns=["mean_attention_distance", "entropy"]))
    assert np.allclose(f4["entropy"], f12["entropy"], rtol=1e-5)


def test_report_frames_and_json(model):
    rep = attention_stats(model, dataset(6), masking="grid", encoder=True, num_examples=2)
    frame = rep.to_frame()
    depth, dec_depth = model.config.depth, model.config.decoder_depth
    assert list(frame["part"]) == ["decoder"] * dec_depth + ["encoder"] * depth
    assert frame["images"].iloc[0] == 6
    heads = rep.heads_frame()
    assert len(heads) == dec_depth * model.config.decoder_num_heads + depth * model.config.num_heads
    doc = json.loads(to_json(rep.to_dict()))
    assert doc["mask"] == "grid" and doc["num_images"] == 6 and len(doc["layers"]) == dec_depth
    assert {"consistency", "consistency_ci", "soft_consistency", "locality", "black_fraction",
            "mean_attention_distance", "entropy"} <= set(doc["layers"][0])
    bias = doc["positional_bias"]["layers"][0]
    assert len(bias["ks_p"]) == len(bias["chi2_p"]) == 16 and len(bias["counts"]) == 16
    # grid masking: every rank lives on the 16 visible positions (top-left of each 2 x 2 cell)
    counts = np.array(bias["counts"])
    assert counts.sum() == 6 * 16
    assert rep.examples.ranks.shape == (dec_depth, 2, 64)


def test_influence_fields_single_image(model):
    fields = influence_fields(model, dataset(1).tensors[0][0], masking="grid", top_n=3)
    assert fields.ranks.shape == fields.influencer.shape == (model.config.decoder_depth, 1, 64)
    own = fields.influencer[:, 0][fields.ranks[:, 0] < 16]
    assert (own >= 0).all()


def test_errors(model):
    with pytest.raises(ConfigError, match="no decoder"):
        attention_stats(create_model("tiny", decoder_depth=0), dataset(2))
    with pytest.raises(ConfigError, match="top_n"):
        attention_stats(model, dataset(2), top_n=0)
    with pytest.raises(DataError, match="empty"):
        attention_stats(model, dataset(0))


def test_plots(model, tmp_path):
    from maelens.io import save_figure
    from maelens.plots.attention import (
        influence_colours,
        plot_head_metrics,
        plot_influence_map,
        plot_layer_curves,
        plot_positional_bias,
        rank_colours,
    )

    # Colours: important patches by rank, influenced ones borrow, black stays black.
    colours = influence_colours(np.array([1, 0, 2, 3]), np.array([0, 1, 1, -1]), 2)
    palette = rank_colours(2)
    assert np.allclose(colours, [palette[1], palette[0], palette[0], [0, 0, 0]])
    rep = attention_stats(model, dataset(4), masking="grid", encoder=True, num_examples=1)
    image = np.random.default_rng(0).random((32, 32, 3))
    figures = {
        "curves.png": plot_layer_curves(rep), "bias.png": plot_positional_bias(rep, 1),
        "heads.png": plot_head_metrics(rep), "map.png": plot_influence_map(rep.examples, 0, image),
        "bare.png": plot_influence_map(rep.examples, 0),
    }
    for name, fig in figures.items():
        assert save_figure(fig, tmp_path / name).stat().st_size > 1000


def test_black_share_of_all_patches_by_hand():
    """Both denominators of the black proportion (the paper does not say which it uses, sec. 5):
    layer 0 pools the consistent images A (2 black) and B (0 black) of a 3 x 3 grid: 2 / 14 of their
    non-important patches, 2 / 18 of all their patches; layer 1 pools A alone: 2 / 7 and 2 / 9."""
    acc = AttentionAccumulator((3, 3), 2)
    acc.update(hand_batch([["A", "B", "C"], ["C", "C", "A"]]))
    rep = acc.report({})
    l0, l1 = rep.layers
    assert l0["black_fraction"] == pytest.approx(2 / 14) and l0["black_fraction_of_all"] == pytest.approx(2 / 18)
    assert l1["black_fraction"] == pytest.approx(2 / 7) and l1["black_fraction_of_all"] == pytest.approx(2 / 9)
    assert l0["black_fraction_of_all_ci"][0] < 2 / 18 < l0["black_fraction_of_all_ci"][1]
    frame = rep.to_frame()
    assert frame["black_fraction_of_all"].tolist()[:2] == pytest.approx([2 / 18, 2 / 9])
    # over all images (C adds 7 black patches of its 7 non-important, 9 in all): 9 / 21 and 9 / 27
    acc = AttentionAccumulator((3, 3), 2, all_images=True)
    acc.update(hand_batch([["A", "B", "C"], ["C", "C", "A"]]))
    l0 = acc.report({}).layers[0]
    assert l0["black_fraction"] == pytest.approx(9 / 21) and l0["black_fraction_of_all"] == pytest.approx(9 / 27)


def test_layers_are_typed_records_with_the_json_keys_in_order(model):
    """Issue 17: per-layer results are dataclasses; their JSON keeps the dict keys (and order) of before,
    and ``record["name"]`` still reads a field."""
    from maelens.analysis.attention_records import DecoderLayerAttention, HeadAttention

    rep = attention_stats(model, dataset(4), masking="grid", encoder=True, num_examples=0)
    layer, enc = rep.layers[0], rep.encoder_layers[0]
    assert isinstance(layer, DecoderLayerAttention) and isinstance(enc, HeadAttention)
    assert list(layer.to_dict()) == [
        "layer", "images", "consistency", "consistency_ci", "consistent_images", "soft_consistency",
        "soft_consistency_ci", "locality", "locality_ci", "local_patches", "influenced_patches", "black_fraction",
        "black_fraction_ci", "black_patches", "non_important_patches", "black_fraction_of_all",
        "black_fraction_of_all_ci", "locality_images", "mean_attention_distance", "entropy",
        "head_mean_attention_distance", "head_entropy"]
    assert layer["consistency"] == layer.consistency and enc["entropy"] == enc.entropy
    assert len(layer.head_entropy) == model.config.decoder_num_heads
    with pytest.raises(KeyError):
        layer["no_such_field"]
    doc = json.loads(to_json(rep.to_dict()))
    assert doc["layers"][0]["black_patches"] == layer.black_patches


def test_masking_is_the_parameter_and_mask_its_former_name(model):
    """Issue 17: one name per concept; ``mask=`` still works and a contradiction is refused."""
    ds = dataset(4)
    new = attention_stats(model, ds, masking="random", seed=1, num_examples=0)
    old = attention_stats(model, ds, mask="random", seed=1, num_examples=0)
    assert to_json(new.to_dict()) == to_json(old.to_dict()) and new.settings["mask"] == "random"
    with pytest.raises(ConfigError, match="disagree"):
        attention_stats(model, ds, masking="block", mask="random")
