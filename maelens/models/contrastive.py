"""NT-Xent, SimCLR's contrastive loss (Chen et al. 2020, eq. 1; the IPOL paper's sec. 6 equation).

For a batch of N images, each seen in two augmented views, the 2N projections z_1..z_2N are compared by
cosine similarity sim(u, v) = u.v / (|u| |v|). The loss of the positive pair (i, j) is

    l(i, j) = -log( exp(sim(z_i, z_j) / tau) / sum_{k=1..2N, k != i} exp(sim(z_i, z_k) / tau) )

so each anchor i has one positive (the other view of its image) and 2N - 2 negatives (both views of
every other image) in its denominator, which also holds the positive. The batch loss averages l over
all 2N anchors, both views of each image taking the anchor's role: L = (1/2N) sum_k [l(2k-1, 2k) + l(2k, 2k-1)].

Written as a cross-entropy: the rows of S = sim(z, z) / tau with the diagonal set to -inf (k != i) are
logits, and the positive's column is the target class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent_loss(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Mean NT-Xent loss over the 2N anchors of two views ``z_a``, ``z_b`` (N, D) of the same N images
    (row k of ``z_a`` and row k of ``z_b`` are a positive pair); computed in float32."""
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(f"z_a and z_b must be two (N, D) tensors of the same shape, got {tuple(z_a.shape)} "
                         f"and {tuple(z_b.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    n = z_a.shape[0]
    # unit vectors, so that dot products are cosine similarities
    z = F.normalize(torch.cat([z_a, z_b]).float(), dim=1)
    logits = z @ z.T / temperature
    # k != i: an anchor is never its own negative
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    # the positive of anchor i is i + N in the first half, i - N in the second
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, positives)


__all__ = ["nt_xent_loss"]
