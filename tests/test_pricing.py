"""Cost from the price table: lookup rules, user overrides, and cost on records."""

from __future__ import annotations

import pytest

from harness import plugins
from harness.errors import HarnessError
from harness.run.pricing import Price, load_prices, price_for
from harness.run.runner import Run, RunConfig
from harness.testing import scripted_classifier
from harness.types import Response


def test_exact_keys_beat_patterns_and_longer_patterns_beat_shorter():
    prices = {"openai:gpt-4o*": Price(1, 1), "openai:gpt-4o-mini*": Price(2, 2), "openai:gpt-4o": Price(3, 3)}
    assert price_for("openai:gpt-4o", prices) == Price(3, 3)
    assert price_for("openai:gpt-4o-mini-2024-07-18", prices) == Price(2, 2)
    assert price_for("openai:gpt-4o-2024-08-06", prices) == Price(1, 1)
    assert price_for("anthropic:claude", prices) is None


def test_packaged_table_loads_and_a_user_file_overrides_it(tmp_path):
    packaged = load_prices()
    assert packaged["openai:gpt-4o"].input_per_million > 0
    mine = tmp_path / "prices.toml"
    mine.write_text('["openai:gpt-4o"]\ninput = 1.0\noutput = 2.0\n["vllm:my-model"]\ninput = 0.5\noutput = 0.5\n')
    merged = load_prices(mine)
    assert merged["openai:gpt-4o"] == Price(1.0, 2.0, batch_discount=0.5)  # the packaged openai batch discount
    assert merged["vllm:my-model"].batch_discount == 0.0  # no batch API, no discount
    assert "vllm:my-model" in merged and "anthropic:claude-haiku-4-5*" in merged


def test_a_batch_answer_costs_the_price_less_the_provider_discount(tmp_path):
    packaged = load_prices()
    for spec in ("openai:gpt-4o", "anthropic:claude-sonnet-4-5*"):
        price = packaged[spec]
        assert price.cost(1000, 100, batch=True) == pytest.approx(price.cost(1000, 100) * 0.5)
    mine = tmp_path / "prices.toml"
    mine.write_text('[batch_discount]\nopenai = 0.25\n["openai:a"]\ninput = 4.0\noutput = 4.0\n'
                    '["openai:b"]\ninput = 4.0\noutput = 4.0\nbatch_discount = 0\n')
    merged = load_prices(mine)
    assert merged["openai:a"].cost(1_000_000, 0, batch=True) == pytest.approx(3.0)
    assert merged["openai:b"].cost(1_000_000, 0, batch=True) == pytest.approx(4.0)
    mine.write_text('[batch_discount]\nopenai = 2\n')
    with pytest.raises(HarnessError, match=r"prices.toml: \[batch_discount\] openai = 2: expected a share from 0 to 1"):
        load_prices(mine)


def test_a_bad_price_file_names_the_file_and_entry(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('["x"]\ninput = "cheap"\noutput = 1\n')
    with pytest.raises(HarnessError, match="bad.toml.*'x'"):
        load_prices(bad)
    with pytest.raises(HarnessError, match="missing.toml"):
        load_prices(tmp_path / "missing.toml")


def test_records_cost_tokens_times_price(tmp_path, small_tree):
    prices = tmp_path / "prices.toml"
    prices.write_text('["scripted"]\ninput = 2.0\noutput = 10.0\n')
    _, plugin = scripted_classifier(lambda p: Response(text=p.candidates[0].name, tokens_in=1000, tokens_out=10))
    registry = plugins.load_registry(extra_plugins=[("scripted-test", plugin)])
    config = RunConfig(benchmark="folder", data_root=small_tree, categories=["tile"], models=["scripted"],
                       results_dir=tmp_path, prices=prices, n_boot=50)
    result = Run(config, registry).execute()
    called = [r for r in result.records if r["called"]]
    assert called and all(r["cost_usd"] == pytest.approx((1000 * 2.0 + 10 * 10.0) / 1e6) for r in called)
    assert all(r["cost_usd"] is None for r in result.records if not r["called"])
    usage = result.run["metrics"]["scripted"]["usage"]
    assert usage["cost_usd_total"] == pytest.approx(len(called) * 0.0021)
    assert result.run["provenance"]["prices_usd_per_million_tokens"]["scripted"] == {"input": 2.0, "output": 10.0}
