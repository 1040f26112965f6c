"""Analyses of trained MAEs: decoder attention (IPOL sec. 5), embedding distributions (sec. 5),
representation evaluation (sec. 6). Names are imported lazily so ``import maelens`` stays light."""

from __future__ import annotations

from .._lazy import lazy_names

_EXPORTS = {
    "AttentionRecorder": "hooks",
    "AttentionReport": "attention_dataset",
    "attention_stats": "attention_dataset",
    "influence_fields": "attention_dataset",
    "DistFitResult": "distfit",
    "encoder_samples": "distfit",
    "fit_samples": "distfit",
    "rank_distributions": "distfit",
    "synthetic_attention_samples": "synthetic",
    "FeatureSet": "features",
    "extract_features": "features",
    "EvaluationReport": "evaluate",
    "KNNClassifier": "evaluate",
    "evaluate_features": "evaluate",
    "LinearProbe": "probes",
    "AttentiveProbe": "probes",
    "PCATSNE": "reduce",
    "GaussianVAE": "reduce",
    "StudentTVAE": "reduce",
    "ParametricTSNE": "reduce",
    "ReconstructionError": "reconstruction",
    "reconstruction_error": "reconstruction",
    "similar_images": "similarity",
    "wilson_interval": "stats",
}

# issue 14: analyses beyond the paper
_EXPORTS.update({
    "CKAResult": "cka", "layer_cka": "cka", "linear_cka": "cka", "minibatch_cka": "cka", "hsic1": "cka",
    "attention_rollout": "rollout", "rollout_maps": "rollout", "RolloutResult": "rollout",
    "layer_features": "layer_probes", "probe_layers": "layer_probes", "LayerProbeReport": "layer_probes",
    "token_stats": "token_stats", "outlier_threshold": "token_stats", "TokenStatsReport": "token_stats",
    "BlockRecorder": "layer_outputs", "run_layers": "layer_outputs",
})


__getattr__ = lazy_names(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
