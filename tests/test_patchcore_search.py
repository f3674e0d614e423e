"""The grouped nearest-neighbour search (`harness_patchcore.search`) against a search of the whole bank."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the patchcore gate needs torch: pip install 'anomaly-harness[patchcore]'")

from harness_patchcore import bank, distances, memory, search  # noqa: E402


def whole_bank(features, queries):
    """Reference: squared distances to every bank feature, in float64."""
    return torch.cdist(queries.double(), features.double()).pow(2)


def assert_exact(features, queries, found, rows):
    reference = whole_bank(features, queries)
    smallest = reference.min(dim=1).values
    assert torch.allclose(found.double(), smallest, rtol=1e-4, atol=1e-3)
    # the row returned is a nearest one (ties may pick another of equal distance)
    assert torch.allclose(reference.gather(1, rows.view(-1, 1)).squeeze(1), smallest, rtol=1e-4, atol=1e-3)


def mixture(generator, count, dim, centres=12, spread=0.3):
    """Points around a few random centres: the clustered kind of data the search prunes well."""
    middles = torch.randn(centres, dim, generator=generator) * 4
    picks = torch.randint(centres, (count,), generator=generator)
    return middles[picks] + spread * torch.randn(count, dim, generator=generator)


@pytest.mark.parametrize("groups", [None, 1, 3, 40, 600])
def test_grouped_search_finds_the_nearest_feature_of_the_whole_bank(groups):
    generator = torch.Generator().manual_seed(11)
    features = mixture(generator, 600, 24)
    queries = torch.cat(
        [
            mixture(generator, 150, 24),  # normal-looking queries
            features[:20],  # bank features themselves: distance 0
            torch.randn(30, 24, generator=generator) * 12,  # far from everything, as anomalous patches are
        ]
    )
    index = search.ClusteredSearch(torch, features, (features * features).sum(dim=1), groups=groups)
    found, rows = index.nearest(queries, (queries * queries).sum(dim=1))
    assert_exact(features, queries, found, rows)
    assert torch.equal(rows[150:170], torch.arange(20))


def test_grouped_search_skips_groups_that_cannot_hold_the_nearest_feature(monkeypatch):
    generator = torch.Generator().manual_seed(12)
    features = mixture(generator, 2000, 16, centres=30, spread=0.2)
    queries = mixture(generator, 300, 16, centres=30, spread=0.2)
    index = search.ClusteredSearch(torch, features, (features * features).sum(dim=1), groups=30)
    compared = []
    real = index._search

    def counting(group, rows, rows_squared):
        compared.append(rows.shape[0] * index.blocks_t[group].shape[1])
        return real(group, rows, rows_squared)

    monkeypatch.setattr(index, "_search", counting)
    found, rows = index.nearest(queries, (queries * queries).sum(dim=1))
    assert_exact(features, queries, found, rows)
    assert sum(compared) < 0.25 * queries.shape[0] * features.shape[0]


def test_many_queries_are_searched_in_bounded_chunks(monkeypatch):
    generator = torch.Generator().manual_seed(14)
    features = mixture(generator, 800, 12)
    queries = mixture(generator, 500, 12)
    index = search.ClusteredSearch(torch, features, (features * features).sum(dim=1), groups=10)
    whole = index.nearest(queries, (queries * queries).sum(dim=1))
    largest = max(block.shape[1] for block in index.blocks_t)
    monkeypatch.setattr(search, "MAX_CHUNK_ELEMENTS", largest * 64)  # chunks of 64 queries
    products = []
    real = index._search
    monkeypatch.setattr(index, "_search", lambda g, q, s: products.append(q.shape[0]) or real(g, q, s))
    chunked = index.nearest(queries, (queries * queries).sum(dim=1))
    assert max(products) <= 64
    assert torch.equal(chunked[1], whole[1]) and torch.allclose(chunked[0], whole[0])


def test_duplicate_features_leave_no_empty_group():
    features = torch.cat([torch.ones(50, 4), torch.zeros(50, 4)])  # two distinct points, many copies
    index = search.ClusteredSearch(torch, features, (features * features).sum(dim=1), groups=8)
    assert len(index.blocks_t) == 2 and all(block.shape[1] == 50 for block in index.blocks_t)
    queries = torch.tensor([[0.9, 1.0, 1.1, 1.0], [0.1, 0.0, -0.1, 0.0]])
    found, rows = index.nearest(queries, (queries * queries).sum(dim=1))
    assert_exact(features, queries, found, rows)


def test_memory_bank_searches_a_large_bank_by_groups_with_the_whole_banks_answer(monkeypatch):
    generator = torch.Generator().manual_seed(13)
    features = mixture(generator, 1800, 20)
    queries = torch.cat([mixture(generator, 400, 20), torch.randn(50, 20, generator=generator) * 10])
    whole = bank.MemoryBank(torch, features)
    expected_distance, expected_rows = whole.nearest(queries)
    assert whole._clustered is None  # below CLUSTERED_SEARCH_FROM: the whole bank

    monkeypatch.setattr(bank, "CLUSTERED_SEARCH_FROM", 1000)
    grouped = bank.MemoryBank(torch, features)
    distance, rows = grouped.nearest(queries)
    assert isinstance(grouped._clustered, search.ClusteredSearch)
    assert torch.allclose(distance, expected_distance, rtol=1e-5, atol=1e-4)
    assert torch.allclose(distance, (features[rows] - queries).norm(dim=1), rtol=1e-4, atol=1e-3)
    assert (rows == expected_rows).float().mean() > 0.99  # the same features, but for exact ties


def test_group_count_grows_with_the_bank():
    assert search.group_count(16386) == 64
    assert search.group_count(4096) == 32
    assert search.group_count(3) == 2


def test_a_bank_the_groups_cannot_prune_is_searched_whole_after_the_first_search(monkeypatch):
    monkeypatch.setattr(bank, "CLUSTERED_SEARCH_FROM", 1000)
    generator = torch.Generator().manual_seed(15)
    # Independent Gaussian features in 64 dimensions: every point is about as far from every
    # centre, so the triangle inequality rules out almost nothing.
    shapeless = bank.MemoryBank(torch, torch.randn(1500, 64, generator=generator))
    queries = torch.randn(200, 64, generator=generator)
    first = shapeless.nearest(queries)
    assert shapeless._clustered.compared_fraction > search.GROUPED_SEARCH_MAX_FRACTION
    assert shapeless.grouped is False
    second = shapeless.nearest(queries)  # the whole bank: the same answers
    assert torch.equal(first[1], second[1]) and torch.allclose(first[0], second[0], atol=1e-4)

    clustered = bank.MemoryBank(torch, mixture(generator, 1500, 16, centres=6, spread=0.2))
    clustered.nearest(mixture(generator, 200, 16, centres=6, spread=0.2))
    assert 0 < clustered._clustered.compared_fraction <= search.GROUPED_SEARCH_MAX_FRACTION
    assert clustered.grouped is True


def test_many_centres_are_found_by_groups_and_a_continued_selection_keeps_its_picks(monkeypatch):
    generator = torch.Generator().manual_seed(16)
    points = mixture(generator, 3000, 8, centres=20, spread=0.5)
    squared = (points * points).sum(dim=1)
    whole_run = memory.greedy_pruned(torch, points, 600, torch.tensor([11]))
    centres = whole_run[:400]
    expected = search.nearest_centres(torch, points, squared, centres)  # below the threshold: one product

    monkeypatch.setattr(search, "CLUSTERED_SEARCH_FROM", 100)
    searches = []
    real = search.ClusteredSearch.nearest
    monkeypatch.setattr(search.ClusteredSearch, "nearest", lambda self, *a: searches.append(1) or real(self, *a))
    found = search.nearest_centres(torch, points, squared, centres)
    assert searches, "the grouped search was not used"
    assert torch.allclose(found[0], expected[0], rtol=1e-4, atol=1e-4)
    chosen = points[centres]
    assert torch.allclose(((chosen[found[1]] - points) ** 2).sum(1), ((chosen[expected[1]] - points) ** 2).sum(1), rtol=1e-5)
    # Continuing the selection from its first 400 picks (the centres found by groups) gives its own picks.
    for loop in (memory.greedy_plain, memory.greedy_pruned):
        assert torch.equal(loop(torch, points, 600, centres.clone()), whole_run), loop.__name__


def test_searching_never_changes_torchs_thread_count(monkeypatch):
    # A thread that starts torch work while the count is changed keeps that count for good;
    # scoring runs beside the model backends' threads, so the search must leave it alone.
    monkeypatch.setattr(bank, "CLUSTERED_SEARCH_FROM", 1000)
    changes = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: changes.append(n))
    generator = torch.Generator().manual_seed(17)
    memory_bank = bank.MemoryBank(torch, mixture(generator, 1500, 8))
    memory_bank.nearest(mixture(generator, 300, 8))
    assert memory_bank._clustered is not None and changes == []


def test_the_group_centres_are_the_plain_greedy_picks_from_row_0():
    # `search` picks its centres with `distances.greedy_from_first` (it cannot import `memory`,
    # which searches with it): the picks of `memory.greedy_plain` started from row 0.
    points = mixture(torch.Generator().manual_seed(21), 900, 6, centres=9)
    picks = distances.greedy_from_first(torch, points, 40)
    assert picks[0] == 0 and len(set(picks.tolist())) == 40
    assert torch.equal(picks, memory.greedy_plain(torch, points, 40, torch.zeros(1, dtype=torch.long)))
