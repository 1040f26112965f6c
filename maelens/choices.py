"""The choices and defaults the library and the command line share, in one module that imports nothing.

As timm keeps its data constants in ``timm/data/constants.py``: the parser builds its ``choices=`` and help
texts from these names without importing torch (``maelens --help`` stays fast), and the library checks its
arguments against the same names, so a choice list is written once.
"""

from __future__ import annotations

#: Arithmetic precision of a run: ``auto`` (bf16 autocast where the device computes it natively), ``fp32``
#: or ``bf16`` (:mod:`maelens.train.precision`).
PRECISIONS = ("auto", "fp32", "bf16")
#: The lr decay after the warm-up (:func:`maelens.train.schedule.lr_at`; IPOL sec. 4 used ``linear``).
SCHEDULES = ("cosine", "linear")

#: The pretraining method of a model that does not say (older configs): the masked autoencoder.
MAE = "mae"
#: The contrastive baseline (IPOL sec. 6).
SIMCLR = "simclr"
#: What a pretraining run trains (:mod:`maelens.train.methods` keeps one entry per name).
TRAINING_METHODS = (MAE, SIMCLR)

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

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_WARMUP_EPOCHS", "FINETUNE_OPTIMIZERS", "LOSSES", "MAE", "PRECISIONS",
           "SCHEDULES", "SCRATCH", "SIMCLR", "TRAINING_METHODS"]
