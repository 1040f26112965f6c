"""The attention recorder: maps equal softmax(q kᵀ/√d) computed by hand, outputs are unchanged,
hooks come off reliably."""

import pytest
import torch
import torch.nn.functional as F

from maelens.analysis.hooks import AttentionRecorder, attention_blocks
from maelens.errors import ConfigError
from maelens.models import create_model, set_fused_attention


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("tiny").eval()


def images(n=3, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def manual_attention(block, x):
    """softmax(q kᵀ / √d) from the block's input x (B, N, D), written out from the weights."""
    attn = block.attn
    xn = F.layer_norm(x, (x.shape[-1],), block.norm1.weight, block.norm1.bias, block.norm1.eps)
    qkv = xn @ attn.qkv.weight.T + attn.qkv.bias
    b, n, _ = x.shape
    h, d = attn.num_heads, x.shape[-1] // attn.num_heads
    q, k, _ = qkv.reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
    return torch.softmax(q @ k.transpose(-2, -1) / d**0.5, dim=-1)


def block_inputs(model, part):
    """Capture each block's input with test-side pre-hooks."""
    seen, handles = [], []
    for blk in attention_blocks(model, part):
        handles.append(blk.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach())))
    return seen, handles


@pytest.mark.parametrize("fused", [True, False])
def test_recorded_maps_equal_manual_softmax(model, fused):
    set_fused_attention(model, fused)
    try:
        imgs = images()
        enc_in, h1 = block_inputs(model, "encoder")
        dec_in, h2 = block_inputs(model, "decoder")
        with torch.no_grad(), AttentionRecorder(model, ("encoder", "decoder")) as rec:
            model(imgs, 0.75, masking="random", generator=torch.Generator().manual_seed(1))
        for h in h1 + h2:
            h.remove()
    finally:
        set_fused_attention(model, True)
    cfg = model.config
    assert len(rec.maps["encoder"]) == cfg.depth and len(rec.maps["decoder"]) == cfg.decoder_depth
    for part, inputs in (("encoder", enc_in), ("decoder", dec_in)):
        for blk, x, got in zip(attention_blocks(model, part), inputs, rec.maps[part]):
            expected = manual_attention(blk, x)
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, atol=1e-6)
    # encoder: CLS + 16 visible tokens; decoder: CLS + all 64 patches
    assert rec.maps["encoder"][0].shape == (3, cfg.num_heads, 17, 17)
    assert rec.maps["decoder"][0].shape == (3, cfg.decoder_num_heads, 65, 65)
    assert torch.allclose(rec.maps["decoder"][1].sum(-1), torch.ones(3, cfg.decoder_num_heads, 65))


def test_outputs_unchanged_and_hooks_removed(model):
    imgs = images()
    noise = torch.rand(3, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        loss0, pred0, mask0 = model(imgs, 0.75, noise)
        with AttentionRecorder(model, ("encoder", "decoder")):
            loss1, pred1, mask1 = model(imgs, 0.75, noise)
    assert torch.equal(pred0, pred1) and torch.equal(loss0, loss1) and torch.equal(mask0, mask1)
    for blk in list(model.blocks) + list(model.decoder_blocks):
        assert not blk.attn.qkv._forward_hooks


def test_hooks_removed_on_exception(model):
    with pytest.raises(ValueError):
        with AttentionRecorder(model, ("decoder",)):
            assert all(blk.attn.qkv._forward_hooks for blk in model.decoder_blocks)
            raise ValueError("boom")
    assert all(not blk.attn.qkv._forward_hooks for blk in model.decoder_blocks)


def test_gradients_flow_and_maps_are_detached(model):
    imgs = images(2).requires_grad_(True)
    with AttentionRecorder(model) as rec:
        loss, _, _ = model(imgs, 0.75, masking="grid", generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert imgs.grad is not None
    assert not rec.maps["decoder"][0].requires_grad


def test_custom_reducer_keeps_memory_small(model):
    with torch.no_grad(), AttentionRecorder(model, reduce=lambda c: c.probs.mean(1)[:, 0]) as rec:
        model(images(), 0.75, masking="grid", generator=torch.Generator().manual_seed(0))
    assert [m.shape for m in rec.maps["decoder"]] == [(3, 65)] * model.config.decoder_depth


def test_chunked_recomputation_matches_whole_batch(model):
    """One image per chunk (any map is larger than a byte): the same maps, and reducers see their
    rows of the batch."""
    imgs, gen = images(5), lambda: torch.Generator().manual_seed(4)
    with torch.no_grad(), AttentionRecorder(model, ("encoder", "decoder")) as whole:
        model(imgs, 0.75, masking="random", generator=gen())
    seen = []

    def reduce(chunk):
        seen.append((chunk.part, chunk.layer, chunk.rows))
        return {"probs": chunk.probs, "pair": (chunk.logits, chunk.probs[:, 0])}

    with torch.no_grad(), AttentionRecorder(model, ("encoder", "decoder"), reduce, chunk_bytes=1) as parts:
        model(imgs, 0.75, masking="random", generator=gen())
    assert ("decoder", 1, slice(4, 5)) in seen and ("encoder", 2, slice(0, 1)) in seen
    assert len(seen) == 5 * (model.config.depth + model.config.decoder_depth)
    for part in ("encoder", "decoder"):
        for full, got in zip(whole.maps[part], parts.maps[part]):
            assert torch.allclose(got["probs"], full, atol=1e-6)
            assert got["pair"][1].shape == full[:, 0].shape


def test_encoder_only_model_has_no_decoder_attention():
    enc = create_model("tiny", decoder_depth=0)
    with pytest.raises(ConfigError, match="no decoder"):
        AttentionRecorder(enc, ("decoder",))
    with pytest.raises(ConfigError, match="attention part"):
        AttentionRecorder(enc, ("neck",))
    with AttentionRecorder(enc, ("encoder",)) as rec, torch.no_grad():
        enc.encode(images(), 0.0)
    assert rec.maps["encoder"][0].shape == (3, 4, 65, 65)
