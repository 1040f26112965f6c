"""The MAE's faster step (issue 23) computes what the official formulation computes: the position
embedding added after masking instead of before, and the decoder's unshuffle as one gather instead of
concatenating L - K mask tokens, gathering and putting the CLS token back. The reference below is that
official formulation (facebookresearch/mae ``models_mae.py``), written out step by step."""

import pytest
import torch

from maelens import create_model
from maelens.models.mae import MaskedAutoencoderViT


def official_forward(model: MaskedAutoencoderViT, imgs: torch.Tensor, noise: torch.Tensor, mask_ratio=0.75):
    """(loss, pred, mask) as the official code orders the operations."""
    x = model.patch_embed(imgs)
    x = x + model.pos_embed[:, 1:, :]  # position embedding of every patch, before masking
    x, ids = model.random_masking(x, mask_ratio, noise)
    cls = model.cls_token + model.pos_embed[:, :1, :]
    x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
    for blk in model.blocks:
        x = blk(x)
    latent = model.norm(x)
    x = model.decoder_embed(latent)
    b, n, d = x.shape
    mask_tokens = model.mask_token.repeat(b, ids.ids_restore.shape[1] + 1 - n, 1)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
    x_ = torch.gather(x_, 1, ids.ids_restore.unsqueeze(-1).repeat(1, 1, d))
    x = torch.cat([x[:, :1, :], x_], dim=1) + model.decoder_pos_embed
    for blk in model.decoder_blocks:
        x = blk(x)
    pred = model.decoder_pred(model.decoder_norm(x))[:, 1:, :]
    loss = model.forward_loss(imgs, pred, ids.mask)
    return loss, pred, ids.mask


@pytest.mark.parametrize("preset,ratio", [("tiny", 0.75), ("tiny", 0.5), ("kth-small", 0.75)])
def test_the_step_equals_the_official_formulation(preset, ratio):
    torch.manual_seed(0)
    model = create_model(preset).train()
    size = model.config.img_size
    imgs = torch.randn(4, 3, size, size)
    noise = torch.rand(4, model.num_patches)
    loss, pred, mask = model(imgs, ratio, noise)
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    ref_loss, ref_pred, ref_mask = official_forward(model, imgs, noise, ratio)
    ref_grads = torch.autograd.grad(ref_loss, [p for p in model.parameters() if p.requires_grad])
    # the same operations on the same numbers: identical outputs, bit for bit
    assert torch.equal(pred, ref_pred) and torch.equal(mask, ref_mask) and torch.equal(loss, ref_loss)
    for g, ref in zip(grads, ref_grads):  # the mask token's gradient is summed in another order
        torch.testing.assert_close(g, ref, rtol=1e-5, atol=1e-7)


def test_every_patch_of_the_decoder_input_is_its_token_or_the_mask_token():
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    length = model.num_patches
    # noise ranks patches 10, 3 and 40 first: with 3 kept they are the visible tokens 1, 2, 3 (CLS is 0)
    noise = torch.ones(1, length)
    noise[0, [10, 3, 40]] = torch.tensor([0.1, 0.2, 0.3])
    ids = model.random_masking(torch.zeros(1, length, 1), 0.0, noise, len_keep=3)[1]
    latent = torch.randn(1, 4, model.config.embed_dim)
    captured = []
    handle = model.decoder_blocks[0].register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    with torch.no_grad():
        model.forward_decoder(latent, ids.ids_restore)
        handle.remove()
        rows = captured[0][0] - model.decoder_pos_embed[0]  # the tokens before their position embedding
        tokens = model.decoder_embed(latent)[0]
    torch.testing.assert_close(rows[0], tokens[0])  # the CLS token
    for patch, token in ((10, 1), (3, 2), (40, 3)):
        torch.testing.assert_close(rows[1 + patch], tokens[token])
    for patch in set(range(length)) - {10, 3, 40}:
        torch.testing.assert_close(rows[1 + patch], model.mask_token[0, 0])
