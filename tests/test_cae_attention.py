"""IPOL's decoder attention metrics carried over to the CAE regressor's cross-attention
(maelens.analysis.cae_attention), on maps worked out by hand."""

import pytest
import torch

from maelens.analysis.cae_attention import regressor_attention_stats, regressor_map, regressor_metrics
from maelens.errors import ConfigError
from maelens.models import create_model
from maelens.models.cae import create_cae

# a 2 x 2 grid: patches 0 (0,0), 1 (0,1), 2 (1,0), 3 (1,1); 0 and 3 visible, 1 and 2 masked
KEEP, MASKED, VISIBLE = torch.tensor([[0, 3]]), torch.tensor([[1, 2]]), torch.tensor([[True, False, False, True]])


def one_head(row_1, row_2):
    """Attention (1, 1, 2, 5) of the queries of patches 1 and 2 over keys CLS, v0, v3, q1, q2."""
    return torch.tensor([[row_1, row_2]], dtype=torch.float64).unsqueeze(1)


def test_the_map_places_keys_at_their_patches_and_leaves_visible_rows_empty():
    W = regressor_map(one_head([0.1, 0.5, 0.2, 0.1, 0.1], [0.0, 0.3, 0.3, 0.2, 0.2]), KEEP, MASKED, 4)
    expected = torch.tensor([[0, 0, 0, 0], [0.5, 0.1, 0.1, 0.2], [0.3, 0.2, 0.2, 0.3], [0, 0, 0, 0]],
                            dtype=torch.float64)
    assert torch.allclose(W[0], expected)
    # two heads are averaged
    two = torch.cat([one_head([0, 1, 0, 0, 0], [0, 0, 1, 0, 0]), one_head([0, 0, 1, 0, 0], [0, 1, 0, 0, 0])], dim=1)
    assert torch.allclose(regressor_map(two, KEEP, MASKED, 4)[0, 1], torch.tensor([0.5, 0, 0, 0.5], dtype=torch.float64))


def test_a_consistent_layer_with_a_black_patch():
    # importance: patch 0 .75, 3 .75, 1 .40, 2 .10 -> the two most important are the visible ones
    W = regressor_map(one_head([0, 0.3, 0.3, 0.35, 0.05], [0, 0.45, 0.45, 0.05, 0.05]), KEEP, MASKED, 4)
    m = regressor_metrics(W, VISIBLE, (2, 2), top_n=1)
    assert bool(m.consistent[0]) and float(m.soft_consistency[0]) == 1.0
    # query 1's top entry is itself (not important): black; query 2's is patch 0 (tie with 3: lower index), adjacent
    assert (int(m.black[0]), int(m.candidates[0]), int(m.influenced[0]), int(m.local[0]), int(m.unrowed[0])) == \
        (1, 2, 1, 1, 0)
    # without the diagonal, query 1's top entry is patch 0 (tie with 3): no black patch, both local
    m = regressor_metrics(W, VISIBLE, (2, 2), top_n=1, include_self=False)
    assert (int(m.black[0]), int(m.influenced[0]), int(m.local[0])) == (0, 2, 2)


def test_an_inconsistent_layer_leaves_the_unrowed_visible_patch_out():
    # importance: patch 0 .6, 2 .6, 1 .4, 3 .3 -> most important {0, 2}: masked patch 2 is in, visible patch 3 out
    W = regressor_map(one_head([0, 0.5, 0.2, 0.1, 0.2], [0, 0.1, 0.1, 0.3, 0.5]), KEEP, MASKED, 4)
    m = regressor_metrics(W, VISIBLE, (2, 2), top_n=1)
    assert not bool(m.consistent[0]) and float(m.soft_consistency[0]) == 0.5
    # the only candidate is masked patch 1, influenced by patch 0 (its top entry), adjacent; patch 3 has no row
    assert (int(m.candidates[0]), int(m.influenced[0]), int(m.local[0]), int(m.black[0]), int(m.unrowed[0])) == \
        (1, 1, 1, 0, 1)


def test_dataset_stats_on_a_cae_and_refusal_of_an_mae():
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(6, 3, 32, 32), torch.zeros(6))
    report = regressor_attention_stats(create_cae("cae-tiny"), data, batch_size=4, quiet=True)
    assert [row.layer for row in report.layers] == [0, 1, 2, 3]
    for row in report.layers:
        assert row.images == 6 and 0 <= row.consistency <= 1 and 0 < row.visible_share < 1
        assert row.mean_attention_distance > 0
    again = regressor_attention_stats(create_cae("cae-tiny"), data, batch_size=3, quiet=True)
    assert again.layers[0].images == 6
    with pytest.raises(ConfigError, match="need a CAE"):
        regressor_attention_stats(create_model("tiny"), data)
