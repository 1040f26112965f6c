"""Trainer building blocks worked out by hand: lr schedule, lr scaling, parameter groups, the config."""

import io
import json
import math

import pytest
import torch

from maelens import create_model
from maelens.errors import ConfigError
from maelens.models import PRESETS
from maelens.train import TrainConfig
from maelens.train.optim import build_optimizer, param_groups
from maelens.train.schedule import lr_at, set_lr

PEAK = 1e-3


def sched(epoch, schedule="cosine", min_lr=0.0, warmup=2.0, epochs=10.0):
    return lr_at(epoch, peak_lr=PEAK, epochs=epochs, warmup_epochs=warmup, min_lr=min_lr, schedule=schedule)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_warmup_is_linear_from_zero_to_peak(schedule):
    assert sched(0.0, schedule) == 0.0
    assert sched(0.5, schedule) == pytest.approx(2.5e-4)
    assert sched(1.0, schedule) == pytest.approx(5e-4)
    assert sched(2.0, schedule) == pytest.approx(PEAK)


def test_cosine_decay_by_hand():
    # progress p = (epoch - 2) / 8; lr = peak * (1 + cos(pi p)) / 2
    assert sched(4.0) == pytest.approx(PEAK * 0.5 * (1 + math.sqrt(2) / 2))  # p = 1/4
    assert sched(6.0) == pytest.approx(5e-4)  # p = 1/2
    assert sched(8.0) == pytest.approx(PEAK * 0.5 * (1 - math.sqrt(2) / 2))  # p = 3/4
    assert sched(10.0) == pytest.approx(0.0, abs=1e-15)
    assert sched(6.0, min_lr=1e-4) == pytest.approx(1e-4 + 9e-4 * 0.5)


def test_linear_decay_by_hand():
    assert sched(4.0, "linear") == pytest.approx(7.5e-4)
    assert sched(6.0, "linear") == pytest.approx(5e-4)
    assert sched(10.0, "linear") == pytest.approx(0.0, abs=1e-15)
    assert sched(6.0, "linear", min_lr=2e-4) == pytest.approx(2e-4 + 8e-4 * 0.5)


def test_no_warmup_starts_at_peak_and_unknown_schedule_is_refused():
    assert sched(0.0, warmup=0.0) == PEAK
    with pytest.raises(ConfigError):
        sched(3.0, schedule="step")


def test_lr_scaling_follows_mae():
    # lr = blr * effective batch / 256, effective batch = batch * accum * processes
    cfg = TrainConfig(batch_size=64, accum_iter=2, blr=1.5e-4)
    assert cfg.effective_batch_size(2) == 256
    assert cfg.peak_lr(2) == pytest.approx(1.5e-4)
    assert cfg.peak_lr(1) == pytest.approx(7.5e-5)
    assert TrainConfig(batch_size=64, lr=3e-3).peak_lr(4) == 3e-3


def test_set_lr_honours_lr_scale():
    model = create_model("tiny")
    opt = build_optimizer(model, lr=1.0, weight_decay=0.05)
    opt.param_groups[0]["lr_scale"] = 0.5
    set_lr(opt, 2e-3)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(1e-3), pytest.approx(2e-3)]


def official_groups(model):
    """The official pretraining's grouping, restated from its behaviour (facebookresearch/mae
    main_pretrain.py -> timm add_weight_decay(model, 0.05) with an empty skip list): no decay iff the
    tensor is 1-D or its name ends in '.bias'; frozen tensors in no group."""
    no_decay, decay = set(), set()
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if len(param.shape) == 1 or name.endswith(".bias") else decay).add(name)
    return no_decay, decay


def named_groups(model, **kwargs):
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay, decay = param_groups(model, 0.05, **kwargs)
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05
    return {names[id(p)] for p in no_decay["params"]}, {names[id(p)] for p in decay["params"]}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_default_groups_are_the_official_rule_on_every_preset(preset):
    with torch.device("meta"):  # shapes only: mae-huge need not be allocated
        model = create_model(preset)
    assert named_groups(model) == official_groups(model)


def test_param_groups_by_hand_and_the_timm_variant():
    model = create_model("tiny")
    exempt, decayed = named_groups(model)
    assert {"norm.weight", "norm.bias", "blocks.0.norm1.weight", "blocks.0.attn.qkv.bias",
            "decoder_pred.bias"} <= exempt
    assert {"cls_token", "mask_token", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight",
            "blocks.2.mlp.fc2.weight", "decoder_embed.weight", "decoder_pred.weight"} <= decayed
    # every trainable parameter once; the fixed position tables in neither group
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert exempt | decayed == trainable and not exempt & decayed
    assert "pos_embed" not in trainable | exempt | decayed
    timm_exempt, timm_decayed = named_groups(model, decay_tokens=False)
    tokens = {"cls_token", "mask_token"}
    assert timm_exempt == exempt | tokens and timm_decayed == decayed - tokens


def test_decay_tokens_is_recorded_and_old_runs_keep_their_meaning():
    from maelens.train.reuse import _differences

    assert TrainConfig().decay_tokens is True and TrainConfig(decay_tokens=False).to_dict()["decay_tokens"] is False
    # a run stored before the field existed exempted the tokens: it matches --no-decay-tokens only
    stored = {k: v for k, v in json.loads(json.dumps(TrainConfig().to_dict())).items() if k != "decay_tokens"}
    assert _differences(stored, TrainConfig(decay_tokens=False)) == []
    assert _differences(stored, TrainConfig()) == ["decay_tokens"]


def test_schedule_is_the_official_adjust_learning_rate():
    """facebookresearch/mae util/lr_sched.py, restated: lr = peak * epoch / warmup during warm-up, then
    min_lr + (peak - min_lr) * 0.5 * (1 + cos(pi * (epoch - warmup) / (epochs - warmup))), epoch fractional
    (data_iter_step / len(data_loader) + epoch)."""
    peak, min_lr, warmup, epochs, steps = 6e-4, 1e-6, 5, 40, 7
    for epoch in range(epochs):
        for it in range(steps):
            e = it / steps + epoch
            official = (peak * e / warmup if e < warmup else
                        min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (e - warmup) / (epochs - warmup))))
            assert lr_at(e, peak_lr=peak, epochs=epochs, warmup_epochs=warmup, min_lr=min_lr) == pytest.approx(
                official, rel=1e-12, abs=1e-18)


def test_optimizer_is_adamw_with_mae_betas():
    opt = build_optimizer(create_model("tiny"), lr=1e-3, weight_decay=0.05)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.95)


def test_config_round_trips_through_plain_dicts():
    cfg = TrainConfig.with_loss("norm-pix", preset="ipol64", model_overrides={"depth": 2}, betas=(0.8, 0.9),
                                clip_grad=1.0, out="runs/x")
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert TrainConfig.from_dict({**d, "unknown_future_key": 1}) == cfg
    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == d
    assert cfg.model_config().norm_pix_loss and cfg.model_config().depth == 2
    assert cfg.image_size == 64


def test_loss_names_map_to_model_options():
    assert TrainConfig.with_loss("ycbcr").model_config().loss_target == "ycbcr"
    assert TrainConfig.with_loss("ycbcr-plain").model_config().loss_target == "ycbcr-plain"
    assert not TrainConfig.with_loss("pixel").model_config().norm_pix_loss
    with pytest.raises(ConfigError, match="loss"):
        TrainConfig.with_loss("l1")


@pytest.mark.parametrize("bad", [
    {"epochs": 0}, {"batch_size": -1}, {"accum_iter": 0}, {"schedule": "step"}, {"masking": "checker"},
    {"mask_ratio": 0.0}, {"mask_ratio": 1.0}, {"warmup_epochs": 20}, {"blr": 0.0}, {"clip_grad": -1.0},
    {"betas": (0.9, 1.5)}, {"loss_target": "lab"}, {"model_overrides": {"norm_pix_loss": True}},
])
def test_bad_values_raise_config_error(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_unknown_preset_is_reported_when_building_the_model():
    with pytest.raises(ConfigError, match="preset"):
        TrainConfig(preset="vit-gigantic").model_config()


def test_masking_defaults_to_the_methods_own_paper_recipe():
    """A library caller naming method="cae" gets the CAE paper's block-wise 50% (not MAE's random 75%);
    given values are used as given; resumed runs stored with explicit values compare equal."""
    from maelens.train.config import default_masking
    from maelens.train.resume import comparable

    cae = TrainConfig(method="cae", preset="cae-tiny")
    assert (cae.masking, cae.mask_ratio) == ("block", 0.5) == default_masking("cae")
    assert (TrainConfig().masking, TrainConfig().mask_ratio) == ("random", 0.75)
    given = TrainConfig(method="cae", preset="cae-tiny", masking="random", mask_ratio=0.6)
    assert (given.masking, given.mask_ratio) == ("random", 0.6)
    stored = cae.to_dict()
    assert comparable(stored, TrainConfig)["masking"] == "block"
    older = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("masking", "mask_ratio")}
    assert comparable(older, TrainConfig)["masking"] == "random"
    assert comparable(older, TrainConfig)["mask_ratio"] == 0.75
