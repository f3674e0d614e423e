"""Exact nearest-neighbour search that skips most of a large memory bank on a CPU.

Scoring an image compares each of its patch features (784 by default) with
every bank feature: 784 x 16,386 distances in 152 dimensions, about 42 ms on
2 cores, half the time of a whole test image. Most of that work is wasted:
a patch can only be nearest to bank features in its own neighbourhood.

`ClusteredSearch` groups the bank around a few centres once (k-center greedy
over the bank, so every feature is near some centre) and remembers each
group's radius, the distance of its farthest member. For a query q at
distance d_j from centre j, no member of group j is nearer than
``d_j - radius_j`` (triangle inequality). The search then

1. compares q with the members of its nearest centre's group, which gives an
   upper bound on q's nearest-neighbour distance;
2. compares q with the members of every other group whose lower bound does
   not exceed that upper bound; the others cannot hold q's nearest neighbour.

The answer is the one a search of the whole bank gives (the same distance;
where two bank features tie, possibly the other one). On the bottle
category's default bank: 15.9 ms per test image instead of 45.7 ms,
comparing each query with 18% of the bank on average (up to 42% for an
anomalous image: far from all normal features, its bounds prune less); with
another busy process on the 2 cores, 50.1 ms against 120.2
(``python benchmarks/nearest.py [--busy]``, best of 3 passes over 30 images,
as in the README's table).

Distances are computed as ``|q|^2 + |m|^2 - 2 q.m`` in float32, whose
rounding error grows with the squared norms, so every bound is widened by
`SLACK` times them: about a hundred times float32's rounding, and still far
below the gaps the bounds have to separate.

`nearest_centres` finds each point's nearest centre, by groups when the
centres are many: coreset selection (`memory`) continues from a bank this way.
The blocked whole search and the greedy loop that picks the group centres
are `distances`, which imports neither module.
"""

from __future__ import annotations

import math
from typing import Any

from harness_patchcore.distances import MAX_CHUNK_ELEMENTS, greedy_from_first, nearest_squared

#: Banks with at least this many features are searched by groups on a CPU; below it the whole
#: bank is compared, and grouping gains little. Per bottle test image, the first n features of its
#: bank, whole / grouped: 2,000: 3.3-3.5 / 3.6-4.6 ms; 3,000: 6.0 / 5.8; 4,000: 7.7-8.8 / 5.5-6.8;
#: 8,000: 16.2-16.3 / 9.9-10.0; 16,386: 40-49 / 16.0 (`benchmarks/nearest.py`, idle cores).
CLUSTERED_SEARCH_FROM = 4096
#: A grouped search that compares queries with more than this share of the bank gains little over
#: the whole search and may lose: on bottle's bank blurred with noise until the groups stop
#: pruning, comparing 20% of it took 18.7 ms per image against 47.1 whole, comparing 98-100%
#: took 39-58 ms against 40-42.
GROUPED_SEARCH_MAX_FRACTION = 0.5
#: Relative widening of every bound, against float32 rounding in the squared-distance expansion.
SLACK = 1e-5


def group_count(size: int) -> int:
    """How many groups for a bank of ``size`` features: about sqrt(size) / 2 (64 for 16,386).

    More groups prune more of the bank but cost a small matrix product each;
    on the bottle bank 48-64 groups were fastest (13.1-13.8 ms per image),
    32 and 96 slower (13.7 and 17.3 ms), 256 twice as slow (25.4 ms).
    """
    return max(2, min(size, round(math.sqrt(size) / 2)))


class ClusteredSearch:
    """A bank's features grouped around centres, for exact nearest-neighbour search (see the module docstring)."""

    def __init__(self, torch: Any, features: Any, squared: Any, groups: int | None = None):
        self.torch = torch
        size = features.shape[0]
        count = group_count(size) if groups is None else max(1, min(groups, size))
        with torch.inference_mode():
            # k-center greedy from row 0, on the calling thread's torch threads (at the first search: 50-60 ms
            # for bottle's 16,386 features, on one scoring thread or two).
            centre_rows = torch.arange(size) if count >= size else greedy_from_first(torch, features, count)
            member_squared, group = nearest_centres(torch, features, squared, centre_rows)
            # A centre that duplicates another may win no member; an empty group is dropped.
            occupied = torch.bincount(group, minlength=count) > 0
            renumber = occupied.long().cumsum(0) - 1
            group, centre_rows, count = renumber[group], centre_rows[occupied], int(occupied.sum())
            self.centres = features.index_select(0, centre_rows)
            self.centre_squared = squared.index_select(0, centre_rows)
            order = torch.argsort(group, stable=True)
            self.bank_row = order  # position in the grouped bank -> row of the original bank
            sizes = torch.bincount(group, minlength=count).tolist()
            self.starts = [0]
            for n in sizes:
                self.starts.append(self.starts[-1] + n)
            grouped = features.index_select(0, order)
            grouped_squared = squared.index_select(0, order)
            self.blocks_t = [grouped[a:b].T.contiguous() for a, b in zip(self.starts, self.starts[1:])]
            self.blocks_squared = [grouped_squared[a:b] for a, b in zip(self.starts, self.starts[1:])]
            self.largest_group = max(sizes)
            # Each member's distance to its centre, widened for rounding; the group's radius is the largest.
            widened = (member_squared.clamp_min(0.0) + SLACK * (squared + self.centre_squared[group])).sqrt()
            self.radius = torch.zeros(count).scatter_reduce_(0, group, widened, reduce="amax")
            self.largest_squared = float(squared.max())
        self._compared = 0  # (query, bank feature) pairs compared so far ...
        self._possible = 0  # ... out of this many

    @property
    def compared_fraction(self) -> float:
        """The share of (query, bank feature) pairs the searches so far have compared (0 before any)."""
        return self._compared / self._possible if self._possible else 0.0

    def nearest(self, queries: Any, queries_squared: Any) -> tuple[Any, Any]:
        """Every query's squared distance to its nearest bank feature, and that feature's row in the bank.

        Queries go in chunks, so that no product holds more than about
        ``MAX_CHUNK_ELEMENTS`` distances, as in the whole-bank search. It
        runs on the calling thread's torch threads: one, when a test image is
        scored (`runtime.scoring_workers`: 20-26 ms per bottle image with a busy
        process beside it, against 86-403 on two threads), all cores during a fit.
        """
        chunk = max(1, MAX_CHUNK_ELEMENTS // max(self.largest_group, len(self.blocks_t)))
        if queries.shape[0] <= chunk:
            return self._nearest(queries, queries_squared)
        parts = [
            self._nearest(queries[i : i + chunk], queries_squared[i : i + chunk])
            for i in range(0, queries.shape[0], chunk)
        ]
        return self.torch.cat([p[0] for p in parts]), self.torch.cat([p[1] for p in parts])

    def _nearest(self, queries: Any, queries_squared: Any) -> tuple[Any, Any]:
        torch = self.torch
        count = queries.shape[0]
        self._possible += count * self.bank_row.numel()
        to_centres = torch.addmm(self.centre_squared.unsqueeze(0), queries, self.centres.T, alpha=-2.0)
        to_centres.add_(queries_squared.unsqueeze(1))
        widening = SLACK * (queries_squared.unsqueeze(1) + self.centre_squared.unsqueeze(0))
        lower = (to_centres - widening).clamp_min_(0.0).sqrt_().sub_(self.radius).clamp_min_(0.0)

        best = torch.empty(count)
        which = torch.empty(count, dtype=torch.long)
        # 1. each query against its nearest centre's group: every query is written exactly once.
        home = to_centres.argmin(dim=1)
        by_home = torch.argsort(home, stable=True)
        home_sizes = torch.bincount(home, minlength=len(self.blocks_t)).tolist()
        start = 0
        for group, n in enumerate(home_sizes):
            if n:
                rows = by_home[start : start + n]
                value, position = self._search(group, queries.index_select(0, rows), queries_squared.index_select(0, rows))
                best.index_copy_(0, rows, value)
                which.index_copy_(0, rows, position)
                start += n

        # 2. every other group that might hold something nearer.
        upper = (best + SLACK * (queries_squared + self.largest_squared)).clamp_min_(0.0).sqrt_()
        needed = lower <= upper.unsqueeze(1)
        needed[torch.arange(count), home] = False
        for group in needed.any(dim=0).nonzero().squeeze(1).tolist():
            rows = needed[:, group].nonzero().squeeze(1)
            value, position = self._search(group, queries.index_select(0, rows), queries_squared.index_select(0, rows))
            current = best.index_select(0, rows)
            nearer = value < current
            best.index_copy_(0, rows, torch.where(nearer, value, current))
            which.index_copy_(0, rows, torch.where(nearer, position, which.index_select(0, rows)))
        return best, self.bank_row.index_select(0, which)

    def _search(self, group: int, queries: Any, queries_squared: Any) -> tuple[Any, Any]:
        """Squared distance of each query to its nearest member of ``group``, and that member's grouped position."""
        block_t = self.blocks_t[group]
        self._compared += queries.shape[0] * block_t.shape[1]
        value, position = nearest_squared(self.torch, queries, queries_squared, block_t, self.blocks_squared[group])
        return value, position.add_(self.starts[group])


def nearest_centres(torch: Any, points: Any, squared: Any, centres: Any) -> tuple[Any, Any]:
    """Every point's squared distance to its nearest centre among rows ``centres``, and which one (its position).

    Many centres on a CPU (a selection continued from a calibration bank's
    13,093 picks, over bottle's 163,856 training features) are searched by
    groups, as a large memory bank is: 0.8 s instead of 3.7 s there.
    """
    chosen = points.index_select(0, centres)
    chosen_squared = squared.index_select(0, centres)
    if points.device.type == "cpu" and centres.numel() >= CLUSTERED_SEARCH_FROM:
        return ClusteredSearch(torch, chosen, chosen_squared).nearest(points, squared)
    return nearest_squared(torch, points, squared, chosen.T, chosen_squared)
