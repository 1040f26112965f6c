"""Issue 11, "the paper's protocols, exactly": one ranking statistic for Table 2."""

import numpy as np
import pytest

from maelens.analysis import distfit


def test_ranking_orders_laws_by_median_sse(monkeypatch):
    """Laws ``norm`` (SSE 1, 1, 100 over three samples: mean 34, median 1) and ``t`` (2, 2, 2: mean 2,
    median 2): the median puts norm first where the mean would put t first."""
    sse = {"norm": iter([1.0, 1.0, 100.0]), "t": iter([2.0, 2.0, 2.0])}
    monkeypatch.setattr(distfit, "fit_law", lambda law, values: (0.0, 1.0))
    monkeypatch.setattr(distfit, "density_sse", lambda values, law, params, bins: next(sse[law]))
    x = np.random.default_rng(0).normal(size=(3, 50))
    table = distfit.rank_distributions(x, ("t", "norm")).table
    assert distfit.RANK_STATISTIC == "sse_median"
    assert table["law"].tolist() == ["norm", "t"] and table["rank"].tolist() == [1, 2]
    assert table["sse_median"].tolist() == [1.0, 2.0]
    assert table["sse_mean"].tolist() == pytest.approx([34.0, 2.0])
