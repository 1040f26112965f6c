"""The decoder attention metrics of IPOL sec. 5 "Patch attention properties" (Sarbout & Colom),
plus mean attention distance and entropy, on batched tensors.

Notation: ``probs`` (B, H, T, T) attention probabilities of one layer (rows = queries, CLS first,
T = 1 + N); ``W`` (B, N, N) the head-averaged map over the N patch tokens; ``visible`` (B, N)
bool; patches are numbered row-major on the patch grid. Every function handles a whole batch at
once; any leading batch shape works where the docstring says (..., N).

Ties are broken towards the lower patch index everywhere: the order of patches is "by value,
descending, then by index, ascending" (a stable descending sort).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from .stats import wilson_interval


def global_attention(probs: torch.Tensor, num_prefix: int = 1) -> torch.Tensor:
    """(B, H, T, T) -> (B, N, N): the head mean with the CLS (prefix) row and column dropped and
    no renormalisation, the paper's global matrix W (sec. 5, first paragraph)."""
    return probs[..., num_prefix:, num_prefix:].mean(dim=-3)


def importance(W: torch.Tensor) -> torch.Tensor:
    """(..., N, N) -> (..., N): importance of patch j, s_j = Σ_i W[i, j] (the column sums, sec. 5)."""
    return W.sum(dim=-2)


def importance_ranks(scores: torch.Tensor) -> torch.Tensor:
    """(..., N) -> (..., N) long: rank of each patch, 0 = most important; ties: lower index first."""
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices
    return torch.argsort(order, dim=-1)


def most_important(scores: torch.Tensor, k: int | torch.Tensor) -> torch.Tensor:
    """(..., N) -> (..., N) bool: the k patches of largest importance (k an int or a (...,) tensor,
    normally the number of visible patches); ties go to the lower patch index."""
    k = torch.as_tensor(k, device=scores.device)
    return importance_ranks(scores) < (k.unsqueeze(-1) if k.ndim else k)


def consistency(important: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """(..., N) bool x2 -> (...,) bool: the image is *consistent* when the most important patches
    are exactly the visible ones (sec. 5; paper: 0.9900 random, 0.9998 grid masking, layer 1)."""
    return (important == visible).all(dim=-1)


def soft_consistency(important: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """(..., N) bool x2 -> (...,) float: |most important ∩ visible| / |visible| (the overlap behind
    the exact test)."""
    return (important & visible).sum(-1).float() / visible.sum(-1).clamp(min=1).float()


def influencers(W: torch.Tensor, important: torch.Tensor, top_n: int = 5, include_self: bool = True) -> torch.Tensor:
    """(..., N, N), (..., N) bool -> (..., N) long influence field (sec. 5, Fig. 9).

    For a non-important patch i, the candidates are the ``top_n`` largest entries of row i of W
    (ties: lower key index first); its *influencer* is the first, i.e. highest-attention, candidate
    that is a most-important patch. Returns that index, ``i`` itself for a most-important patch, and
    -1 for a *black* patch (no most-important patch among its candidates).

    The diagonal entry W[i, i] counts as one of the ``top_n`` entries (``include_self=True``, the
    literal reading of "take the top-n attention values" of the row): a non-important patch
    attending to itself is attention between non-important patches, the very effect black patches
    measure. Since i is never important itself it can only push real candidates out.
    ``include_self=False`` takes the top-n among the other patches.
    """
    n_patches = W.shape[-1]
    if not include_self:
        W = W.masked_fill(torch.eye(n_patches, dtype=torch.bool, device=W.device), float("-inf"))
    # In the (value desc, index asc) order of row i, the first most-important key j* is the
    # important key of largest attention (argmax returns the lowest index among ties). Any other
    # important key comes after j*, so i is influenced iff fewer than top_n keys precede j*.
    keys = important.unsqueeze(-2)
    best = torch.where(keys, W, torch.full_like(W, float("-inf"))).argmax(dim=-1, keepdim=True)
    value = W.gather(-1, best)
    key_index = torch.arange(n_patches, device=W.device)
    ahead = (W > value).sum(-1) + ((W == value) & (key_index < best)).sum(-1)
    found = keys.any(-1) & (ahead < top_n)
    own = key_index.expand_as(ahead)
    out = torch.where(found, best.squeeze(-1), torch.full_like(ahead, -1))
    return torch.where(important, own, out)


def black_patches(influencer: torch.Tensor) -> torch.Tensor:
    """(..., N) long -> (..., N) bool: non-important patches with no most-important patch among
    their top-n attention entries (the black patches of Fig. 9)."""
    return influencer < 0


def chebyshev_local(influencer: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """(..., N) long -> (..., N) bool: patches whose influencer lies in their 3 x 3 neighbourhood
    (Chebyshev distance <= 1 on the patch grid); False for black patches.

    Most-important patches are their own influencer, so they count as local: mask them out with
    ``influenced`` when counting.
    """
    own = torch.arange(influencer.shape[-1], device=influencer.device)
    row, col = own // grid_size[1], own % grid_size[1]
    src = influencer.clamp(min=0)
    near = ((row[src] - row).abs() <= 1) & ((col[src] - col).abs() <= 1)
    return near & (influencer >= 0)


def locality(influencer: torch.Tensor, important: torch.Tensor, grid_size: tuple[int, int]
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (...,): (influenced patches with their influencer in the 3 x 3 neighbourhood,
    influenced patches). Their pooled ratio is the locality of sec. 5 / Fig. 10."""
    influenced = ~important & (influencer >= 0)
    local = influenced & chebyshev_local(influencer, grid_size)
    return local.sum(-1), influenced.sum(-1)


def black_fraction(influencer: torch.Tensor, important: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (...,): (black patches, non-important patches). Their pooled ratio is the black
    proportion of Fig. 10."""
    return black_patches(influencer).sum(-1), (~important).sum(-1)


def patch_centres(grid_size: tuple[int, int], patch_size: int,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """(N, 2) pixel coordinates (row, column) of the patch centres, row-major."""
    rows, cols = grid_size
    r = torch.arange(rows, device=device).repeat_interleave(cols)
    c = torch.arange(cols, device=device).repeat(rows)
    return (torch.stack([r, c], dim=-1).float() + 0.5) * patch_size


def patch_distances(positions: torch.Tensor, grid_size: tuple[int, int], patch_size: int) -> torch.Tensor:
    """Positions (..., N) patch indices -> (..., N, N) Euclidean distances between patch centres in pixels."""
    centres = patch_centres(grid_size, patch_size, positions.device)[positions]
    return (centres.unsqueeze(-2) - centres.unsqueeze(-3)).norm(dim=-1)


def mean_attention_distance(probs: torch.Tensor, distances: torch.Tensor, num_prefix: int = 1) -> torch.Tensor:
    """(B, H, T, T), distances (N, N) or (B, N, N) pixels -> (B, H): attention-weighted distance
    between patch centres, averaged over the patch queries (Dosovitskiy et al. 2021, Fig. 7).

    Each query's weights over the patch keys are renormalised to sum to one: the CLS token has no
    position, so the attention it receives is left out rather than counted at distance zero.
    """
    patch = probs[..., num_prefix:, num_prefix:]
    d = distances if distances.ndim == 2 else distances.unsqueeze(1)
    per_query = torch.linalg.vecdot(patch, d.to(patch.dtype)) / patch.sum(-1).clamp(min=torch.finfo(patch.dtype).tiny)
    return per_query.mean(-1)


def attention_entropy(probs: torch.Tensor, logits: torch.Tensor | None = None, num_prefix: int = 1) -> torch.Tensor:
    """(B, H, T, T) -> (B, H): Shannon entropy in nats of each patch query's full attention row
    (CLS key included, since it is a real softmax outcome), averaged over the patch queries.

    With the pre-softmax ``logits`` it uses H = lse - Σ p·s, lse = max s - log max p (same value,
    no logarithm per entry, so cheaper).
    """
    probs = probs[..., num_prefix:, :]
    if logits is None:
        return torch.special.entr(probs).sum(-1).mean(-1)
    logits = logits[..., num_prefix:, :]
    lse = logits.amax(-1) - probs.amax(-1).log()
    return (lse - torch.linalg.vecdot(probs, logits)).mean(-1)


def ratio_interval(sx: float, sy: float, sxx: float, syy: float, sxy: float,
                   z: float = 1.959963984540054) -> tuple[float, float, float]:
    """Pooled proportion Σx / Σy over images (x successes, y trials per image) with a Wilson interval
    on the effective number of trials, from the sums Σx, Σy, Σx², Σy², Σxy.

    Patches of one image are not independent, so the interval uses the design effect of the ratio
    estimator (linearisation variance V = Σ(x - R y)² / (Σy)²): n_eff = R(1 - R) / V, capped at
    Σy (Korn & Graubard 1998). With one trial per image it is the plain Wilson interval.
    Returns (effective trials, low, high).
    """
    if sy <= 0:
        return (0.0, math.nan, math.nan)
    r = sx / sy
    var = max(sxx - 2 * r * sxy + r * r * syy, 0.0) / (sy * sy)
    n_eff = sy if var <= 0 or r * (1 - r) <= 0 else min(sy, r * (1 - r) / var)
    low, high = wilson_interval(r * n_eff, n_eff, z)
    return (n_eff, low, high)


def positional_tests(observed: np.ndarray, expected: np.ndarray) -> dict[str, np.ndarray]:
    """Per rank r, does the position of the rank-r patch follow the null ``expected`` (R, N)?

    ``observed`` (R, N) counts how often the rank-r patch sat at each position. Returns
    ``ks_stat``/``ks_p`` (one-sample KS on the row-major position index; the discrete null makes it
    conservative) and ``chi2_stat``/``chi2_p``/``chi2_dof`` (goodness of fit over the positions
    with positive expectation), each (R,); NaN for ranks never observed.
    """
    observed = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    n = observed.sum(1)
    out = {key: np.full(observed.shape[0], np.nan) for key in ("ks_stat", "ks_p", "chi2_stat", "chi2_p", "chi2_dof")}
    ok = (n > 0) & (expected.sum(1) > 0)
    if not ok.any():
        return out
    obs, exp, n_ok = observed[ok], expected[ok], n[ok]
    exp = exp * (n_ok / exp.sum(1))[:, None]
    d = np.abs(np.cumsum(obs, 1) - np.cumsum(exp, 1)).max(1) / n_ok
    support = exp > 0
    chi2 = np.where(support, (obs - exp) ** 2 / np.where(support, exp, 1.0), 0.0).sum(1)
    dof = support.sum(1) - 1
    out["ks_stat"][ok] = d
    out["ks_p"][ok] = stats.kstwo.sf(d, n_ok.astype(np.int64))
    out["chi2_stat"][ok] = chi2
    out["chi2_dof"][ok] = dof
    out["chi2_p"][ok] = np.where(dof > 0, stats.chi2.sf(chi2, np.maximum(dof, 1)), 1.0)
    return out

__all__ = ["attention_entropy", "black_fraction", "black_patches", "chebyshev_local", "consistency",
    "global_attention", "importance", "importance_ranks", "influencers", "locality", "mean_attention_distance",
    "most_important", "patch_centres", "patch_distances", "positional_tests", "ratio_interval", "soft_consistency"]
