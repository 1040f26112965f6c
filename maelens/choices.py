"""The choices and defaults the library and the command line share, in one module that imports nothing.

As timm keeps its data constants in ``timm/data/constants.py``: the parser builds its ``choices=`` and help
texts from these names without importing torch (``maelens --help`` stays fast), and the library checks its
arguments against the same names, so a choice list is written once. Each name says which choice it is
(``FEATURE_POOLS`` for the feature extractor, ``LAYER_POOLS`` for the layer analyses, ``HEAD_POOLINGS`` for a
fine-tuned encoder's head), so that none means two things.
"""

from __future__ import annotations

# ---- data -------------------------------------------------------------------------------------------------
#: The splits of a data set: its training images, its test images, or both.
SPLITS = ("train", "test", "all")
#: The segmentation data set used when none is named, and what a segmentation ``--data`` may be.
SEG_DEFAULT = "mosaic"
SEG_SPEC_HELP = ("canvas (2-4 tinted Fashion-MNIST articles on photograph crops, 10 classes + background: class = "
                 "shape; needs dataset-fashion-mnist; a colour lookup reaches mIoU 0.10 at 32x32), mosaic (Voronoi "
                 "mosaics of the scikit-image photographs, 13 classes; labels mostly given by colour: a per-pixel "
                 "colour lookup reaches pixel accuracy 0.448 and mIoU 0.287 at 32x32, 0.476 / 0.306 with a 4x4 vote), "
                 "mosaic:photos (of every installed photograph), an ADE20K folder (ADEChallengeData2016), or a "
                 "folder with images/ and masks/ of index PNGs")

# ---- models -----------------------------------------------------------------------------------------------
#: Masking strategies (:mod:`maelens.models.masking`).
MASKINGS = ("random", "grid", "block", "uniform")
#: How a fine-tuned encoder's head pools its tokens (timm's ``global_pool``: mean of the patch tokens, or CLS).
HEAD_POOLINGS = ("avg", "cls")
#: The segmentation decoders (:mod:`maelens.segmentation.decoders`): linear, or Segmenter's mask transformer.
DECODERS = ("linear", "mask")

# ---- training ---------------------------------------------------------------------------------------------
#: Arithmetic precision of a run: ``auto`` (bf16 autocast where the device computes it natively), ``fp32``
#: or ``bf16`` (:mod:`maelens.train.precision`).
PRECISIONS = ("auto", "fp32", "bf16")
#: The lr decay after the warm-up (:func:`maelens.train.schedule.lr_at`; IPOL sec. 4 used ``linear``).
SCHEDULES = ("cosine", "linear")
#: The pretraining method of a model that does not say (older configs): the masked autoencoder.
MAE = "mae"
#: The contrastive baseline (IPOL sec. 6).
SIMCLR = "simclr"
#: The Context Autoencoder (Chen et al., the CAE paper; :mod:`maelens.models.cae`).
CAE = "cae"
#: What a pretraining run trains (:mod:`maelens.train.methods` keeps one entry per name).
TRAINING_METHODS = (MAE, SIMCLR, CAE)
#: The command line's loss names: MAE's pixel and per-patch normalised pixel targets, the paper's weighted
#: YCbCr MSE_w (``ycbcr``) and its unweighted YCbCr run (``ycbcr-plain``; IPOL sec. 6).
LOSSES = ("pixel", "norm-pix", "ycbcr", "ycbcr-plain")
#: Warm-up epochs when ``warmup_epochs`` is None (IPOL sec. 4), shortened to ``epochs`` when the run is shorter.
DEFAULT_WARMUP_EPOCHS = 2.0
#: Images per process and micro-batch when ``batch_size`` is None (MAE), lowered when the data set is smaller.
DEFAULT_BATCH_SIZE = 64
#: The optimizers of the segmentation fine-tuning (:mod:`maelens.segmentation.optim`).
FINETUNE_OPTIMIZERS = ("adamw", "sgd")
#: ``init`` of a segmentation run that starts from a freshly initialised encoder.
SCRATCH = "scratch"

#: SimCLR's augmentation (Chen et al. 2020, appendix A; their CIFAR-10 strength 0.5): random resized crop area
#: and aspect ratio, colour-distortion strength s, and how often jitter, grayscale and blur apply. The defaults
#: of both :class:`~maelens.models.simclr_config.SimCLRConfig` and :class:`~maelens.data.augment.SimCLRAugment`.
SIMCLR_AUGMENTATION = {"crop_scale": (0.08, 1.0), "crop_ratio": (3 / 4, 4 / 3), "jitter_strength": 0.5,
                       "jitter_prob": 0.8, "gray_prob": 0.2, "blur_prob": 0.5}

# ---- analyses ---------------------------------------------------------------------------------------------
#: How :func:`maelens.analysis.features.extract_features` turns an image's tokens into features.
FEATURE_POOLS = ("auto", "mean", "cls", "head", "flatten", "tokens")
#: How the layer analyses (CKA, layer probes) pool each block's tokens (:mod:`maelens.analysis.layer_outputs`).
LAYER_POOLS = ("mean", "cls", "tokens", "flatten")
#: Which blocks the layer analyses record: ``auto`` (the decoder's too when the model has one) or a part.
LAYER_PART_CHOICES = ("auto", "encoder", "decoder", "all")
#: CKA estimators: linear CKA (Kornblith et al. 2019) or minibatch CKA (Nguyen et al. 2021).
CKA_ESTIMATORS = ("linear", "minibatch")
#: Attention rollout (Abnar & Zuidema 2020): how heads are fused, where the lowest weights are discarded.
HEAD_FUSIONS = ("mean", "max", "min")
DISCARD_SCOPES = ("map", "row")
#: How similar-image search pools the encoder's tokens.
SIMILARITY_POOLS = ("mean", "cls", "flatten")
#: Representation evaluations (:mod:`maelens.analysis.evaluate`; IPOL sec. 6, Tables 3 and 4).
EVALUATION_METHODS = ("knn", "pca-knn", "tsne-knn", "linear", "attentive", "vae-gauss", "vae-t", "ptsne")
#: The evaluations of IPOL Table 3, run when none are named.
TABLE3_METHODS = ("knn", "pca-knn", "tsne-knn")
#: The parametric 2-D maps of IPOL Table 4.
PARAMETRIC_METHODS = ("vae-gauss", "vae-t", "ptsne")
#: The evaluations that end in no kNN vote, so the number of neighbours does not concern them.
NO_KNN_METHODS = ("linear", "attentive")
#: kNN distances and votes, and how t-SNE embeds the test images.
KNN_METRICS = ("cosine", "euclidean")
KNN_WEIGHTS = ("uniform", "distance", "exp")
TSNE_PROTOCOLS = ("transform", "paper")
#: Neighbours of the kNN vote when none is given (the IPOL paper's 20), capped at the training images.
DEFAULT_NEIGHBOURS = 20
#: Robust deviations (median + k x MAD) above which a token's norm counts as an outlier.
DEFAULT_OUTLIER_DEVIATIONS = 3.0
#: The embeddings whose distributions distfit fits (IPOL sec. 5), and how its p-values are computed.
DISTFIT_FEATURES = ("tokens", "cls", "mean")
PVALUE_METHODS = ("asymptotic", "parametric-bootstrap")
#: Synthetic self-attention (IPOL sec. 5): input laws, weight initialisations and attention scalings.
INPUT_LAWS = ("uniform", "chi2", "normal", "exponential", "laplace")
WEIGHT_INITS = ("uniform", "uniform01", "xavier", "normal")
ATTENTION_SCALES = ("tokens", "dim")

#: The analyses ``maelens compare`` runs on each model (:mod:`maelens.analysis.compare`).
COMPARE_ANALYSES = ("attention", "distfit", "knn", "cka")

__all__ = [
    "COMPARE_ANALYSES",
    "ATTENTION_SCALES", "CKA_ESTIMATORS", "DECODERS", "DEFAULT_BATCH_SIZE", "DEFAULT_NEIGHBOURS",
    "DEFAULT_OUTLIER_DEVIATIONS", "DEFAULT_WARMUP_EPOCHS", "DISCARD_SCOPES", "HEAD_FUSIONS", "DISTFIT_FEATURES", "EVALUATION_METHODS", "FEATURE_POOLS",
    "FINETUNE_OPTIMIZERS", "HEAD_POOLINGS", "INPUT_LAWS", "KNN_METRICS", "KNN_WEIGHTS", "LAYER_PART_CHOICES", "LAYER_POOLS",
    "LOSSES", "MAE", "MASKINGS", "NO_KNN_METHODS", "PARAMETRIC_METHODS", "PRECISIONS", "PVALUE_METHODS", "SCHEDULES",
    "SCRATCH", "SEG_DEFAULT", "SEG_SPEC_HELP", "SIMCLR", "SIMCLR_AUGMENTATION", "SIMILARITY_POOLS", "SPLITS", "TABLE3_METHODS",
    "TRAINING_METHODS", "TSNE_PROTOCOLS", "WEIGHT_INITS",
]
