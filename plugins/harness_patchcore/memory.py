"""Building the memory bank: greedy coreset selection, in torch on any device.

Coreset (paper, Alg. 1): start from a random patch feature, then repeatedly
add the feature farthest from everything chosen so far (k-center greedy), so
that a tenth of the features covers the space of all of them. Selection runs
on a Johnson-Lindenstrauss random projection of the features, as the paper
does (it projects to 128 dimensions; the default here is 64, which halves the
work on a small CPU at a small cost in coverage); the chosen features are
kept at full dimension. On a CPU, for many features, the triangle inequality
lets each step skip the features the new centre cannot be nearest to
(`greedy_pruned`), with the picks of the plain loop (up to floating-point
ties). Selection can also continue from centres already chosen (``initial``):
calibration builds a bank from part of the training images and the final bank
extends that one over all of them, instead of selecting again from scratch.

Continuing a selection finds each feature's nearest chosen centre with
`search.nearest_centres` (by groups on a CPU when the centres are many); the
blocked distances and the plain loop's steps are `distances`, which both
modules use. The bank itself is `bank.MemoryBank`; on a CPU it searches a
large bank by groups (`search.ClusteredSearch`), with the same answers.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import numpy as np

from harness_patchcore.distances import farthest_first
from harness_patchcore.search import nearest_centres

#: On a CPU, projected features larger than this (bytes) are selected with `greedy_pruned`:
#: below it they stay in cache and the plain loop, with less bookkeeping, is faster.
PRUNE_ABOVE_BYTES = 16 << 20


def random_projection(torch: Any, in_dim: int, out_dim: int, seed: int, device: Any) -> Any:
    """A seeded Gaussian (in_dim x out_dim) projection scaled by 1/sqrt(out_dim), same on every device."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    matrix = torch.randn(in_dim, out_dim, generator=generator) / math.sqrt(out_dim)
    return matrix.to(device)


def greedy_coreset(
    torch: Any, features: Any, n_select: int, projection_dim: int | None, seed: int, initial: Any | None = None
) -> Any:
    """Indices (on the features' device) of ``n_select`` features chosen by k-center greedy.

    ``features`` is (N, D) float32. Selection is on a random projection to
    ``projection_dim`` dimensions when that is smaller than D. On a GPU, and
    for small inputs, the plain loop runs (on a GPU without a host round
    trip); for large inputs on a CPU the pruned loop (`greedy_pruned`) picks
    the same points, about twice as fast. On a CPU the plain loop runs on
    one thread (`single_thread`).

    ``initial`` (indices into ``features``) are centres chosen already: the
    result starts with them and the loop adds the farthest feature from then
    on, so continuing a greedy run from its first k picks gives its own picks.
    Without it, the first centre is a seeded random feature.
    """
    count, dim = features.shape
    if n_select >= count:
        return torch.arange(count, device=features.device)
    if initial is not None:
        initial = initial.to(device=features.device, dtype=torch.long)
        if initial.numel() >= n_select:
            return initial[:n_select]
    else:
        generator = torch.Generator(device="cpu").manual_seed(seed)
        initial = torch.randint(count, (1,), generator=generator).to(features.device)
    with torch.inference_mode():
        points = selection_space(torch, features, projection_dim, seed)
        large = points.numel() * points.element_size() > PRUNE_ABOVE_BYTES
        loop = greedy_pruned if large and not points.is_cuda else greedy_plain
        if loop is greedy_pruned or points.is_cuda:
            return loop(torch, points.contiguous(), n_select, initial)
        with single_thread(torch):
            return loop(torch, points.contiguous(), n_select, initial)


def selection_space(torch: Any, features: Any, projection_dim: int | None, seed: int) -> Any:
    """The points greedy selection compares: ``features`` (N, D) projected to ``projection_dim`` when smaller than D.

    Projecting rows one by one or all together gives the same rows, so a
    caller that selects among several subsets can project once and pass the
    result to `greedy_coreset` with ``projection_dim=None`` and the same seed.
    """
    dim = features.shape[1]
    if projection_dim is None or projection_dim >= dim:
        return features
    with torch.inference_mode():
        return features @ random_projection(torch, dim, projection_dim, seed + 1, features.device)


@contextlib.contextmanager
def single_thread(torch: Any) -> Iterator[None]:
    """Run torch's CPU operations on one thread inside the block, then restore the thread count.

    For `greedy_plain` on a CPU: each pick is a few vector operations of a
    millisecond or less, and spread over several threads each one costs more
    in synchronisation than the split saves -- far more when other processes
    share the cores (a descheduled thread stalls the others at every
    operation). Measured on 2 busy cores, 941 picks among 94,080 points in 64
    dimensions: 13.2 s on 2 threads, 1.5 s on 1. `greedy_pruned` does more
    work per operation and keeps every thread (on 2 idle cores, 13,093 picks
    among 130,928 points: 12.6 s on 2 threads, 17.9 s on 1).

    Only for the fit: `torch.set_num_threads` also sets the count a thread
    keeps for good when it first runs torch work inside the block, so it is
    kept out of scoring, which runs beside the model backends' threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def greedy_plain(torch: Any, points: Any, n_select: int, initial: Any) -> Any:
    """k-center greedy, one matrix-vector product over all points per pick; no value leaves the device.

    ``initial`` holds the centres chosen already (at least one).
    """
    count = points.shape[0]
    device = points.device
    squared = (points * points).sum(dim=1)
    chosen = torch.empty(n_select, dtype=torch.long, device=device)
    start = initial.numel() - 1
    chosen[:start] = initial[:start]
    if start:
        nearest = nearest_centres(torch, points, squared, initial[:start])[0]
    else:
        nearest = torch.full((count,), float("inf"), device=device)
    return farthest_first(torch, points, squared, chosen, start, nearest, initial[start:])


def greedy_pruned(torch: Any, points: Any, n_select: int, initial: Any) -> Any:
    """k-center greedy that skips the points a new centre cannot be nearest to (same picks as `greedy_plain`).

    Every point remembers its nearest centre so far, and every centre the
    largest distance of a point assigned to it (its radius; an upper bound
    once points move away). By the triangle inequality a new centre c can be
    nearer to a point x of centre j only if |c - c_j| < 2 radius_j, so only
    the points of such centres are compared with c. As centres accumulate the
    radii shrink, and each pick touches a few percent of the points instead
    of all of them.
    """
    count, dim = points.shape
    squared = (points * points).sum(dim=1)
    nearest = torch.full((count,), float("inf"))  # squared distance to the nearest centre
    assign = torch.zeros(count, dtype=torch.long)
    centres = torch.empty(n_select, dim)
    centre_squared = torch.empty(n_select)
    radius_squared = torch.empty(n_select)
    chosen = torch.empty(n_select, dtype=torch.long)
    everyone = torch.arange(count)
    start = initial.numel() - 1
    if start:  # the centres chosen already, with their assigned points and radii
        chosen[:start] = initial[:start]
        centres[:start] = points.index_select(0, initial[:start])
        centre_squared[:start] = squared.index_select(0, initial[:start])
        nearest, assign = nearest_centres(torch, points, squared, initial[:start])
        radius_squared[:start] = 0.0
        radius_squared[:start].scatter_reduce_(0, assign, nearest.clamp_min(0.0), reduce="amax")
    # numpy views of the same memory, for the two whole-array steps of each pick: numpy's argmax and
    # boolean gather are much faster than torch's on a CPU (130,928 points: argmax 8 instead of
    # 166 us, gather and nonzero 109 instead of 224 us), and pick the same points.
    nearest_view, assign_view = nearest.numpy(), assign.numpy()
    index = int(initial[start])
    for step in range(start, n_select):
        chosen[step] = index
        centre = points[index]
        centres[step] = centre
        centre_squared[step] = squared[index]
        if step == 0:
            candidates = everyone
        else:
            to_centres = torch.addmv(centre_squared[:step], centres[:step], centre, alpha=-2.0)
            to_centres.add_(centre_squared[step])
            # |c - c_j| < 2 r_j  <=>  |c - c_j|^2 < 4 r_j^2; a little slack absorbs rounding.
            reachable = to_centres < 4.0 * radius_squared[:step] * (1.0 + 1e-4) + 1e-6
            candidates = torch.from_numpy(np.flatnonzero(reachable.numpy()[assign_view]))
        distance = torch.addmv(squared.index_select(0, candidates), points.index_select(0, candidates), centre, alpha=-2.0)
        distance.add_(centre_squared[step])
        closer = distance < nearest.index_select(0, candidates)
        moved = candidates[closer]
        nearest[moved] = distance[closer]
        assign[moved] = step
        radius_squared[step] = distance[closer].max().clamp_min(0.0) if moved.numel() else 0.0
        index = int(nearest_view.argmax())  # the first of equal maxima, as torch.argmax
    return chosen
