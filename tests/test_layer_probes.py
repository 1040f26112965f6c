"""Layer-wise kNN / linear probes (issue 14): one pass, all layers, the evaluate module's estimators."""

import numpy as np
import pytest
import torch

from maelens.analysis.evaluate import evaluate_features
from maelens.analysis.features import extract_features
from maelens.analysis.layer_outputs import run_layers
from maelens.analysis.layer_probes import layer_features, probe_layers
from maelens.errors import ConfigError
from maelens.models import create_model


class _Labelled(torch.utils.data.Dataset):
    """Two classes told apart by brightness, so every layer carries the label."""

    def __init__(self, n=24, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % 2
        self.x = torch.randn(n, 3, 32, 32, generator=g) * 0.3 + (self.y[:, None, None, None] * 2.0 - 1.0)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("tiny", decoder_depth=0).eval()


def test_layer_features_match_direct_pooling(model):
    data = _Labelled(10)
    feats = layer_features(model, data, batch_size=4, quiet=True)
    assert feats.layers == ["encoder.0", "encoder.1", "encoder.2"]
    assert len(feats.sets) == 3 * 2 * 2
    tokens = run_layers(model, data.x)
    for i, name in enumerate(feats.layers):
        np.testing.assert_allclose(feats.sets[(name, "mean", False)].features, tokens[i][:, 1:].mean(1).numpy(),
                                   atol=1e-5)
        np.testing.assert_allclose(feats.sets[(name, "cls", True)].features, model.norm(tokens[i])[:, 0].detach().numpy(),
                                   atol=1e-5)
    # the last block through the final norm is what `maelens features` extracts
    last = extract_features(model, data, pool="mean", batch_size=4, quiet=True)
    np.testing.assert_allclose(feats.sets[("encoder.2", "mean", True)].features, last.features, atol=1e-5)
    assert list(feats.sets[("encoder.0", "mean", True)].labels) == [i % 2 for i in range(10)]


def test_probe_layers_reports_each_variant_as_evaluate_does(model):
    train, test = layer_features(model, _Labelled(24), quiet=True), layer_features(model, _Labelled(16, 1), quiet=True)
    report = probe_layers(train, test, methods=["knn", "linear"], k=5, params={"linear": {"epochs": 5}}, quiet=True)
    frame = report.to_frame()
    assert len(frame) == 3 * 2 * 2 * 2 and set(frame["depth"]) == {1, 2, 3}
    key = ("encoder.1", "cls", False)
    direct = evaluate_features(train.sets[key], test.sets[key], ["knn"], k=5, quiet=True).results[0]
    row = frame[(frame.layer == "encoder.1") & (frame.pool == "cls") & (~frame.norm) & (frame.method == "knn")]
    assert row.accuracy.item() == direct.accuracy and row.n.item() == 16
    assert frame[frame.method == "knn"].accuracy.min() > 0.9  # brightness separates the classes at every layer
    assert len(report.best()) == 2 * 2 * 2


def test_probe_layers_refusals(model):
    with pytest.raises(ConfigError, match="pool by"):
        layer_features(model, _Labelled(4), pools=["tokens"], quiet=True)
    feats = layer_features(model, _Labelled(12), pools=["mean"], norms=[True], quiet=True)
    with pytest.raises(ConfigError, match="not tsne-knn"):
        probe_layers(feats, methods=["tsne-knn"], quiet=True)
