"""What a new user meets in the first hour: documented options and messages behave as the README says."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError

from conftest import run_cli


def test_debug_works_after_the_subcommand_as_documented(tmp_path, capsys):
    # With --debug the HarnessError propagates (a traceback) instead of becoming "error: ..." and exit 2.
    with pytest.raises(HarnessError, match="nonesuch"):
        run_cli("run", "--benchmark", "nonesuch", "--models", "random", "--results-dir", tmp_path, "--debug",
                capsys=capsys)
    code, _, err = run_cli("run", "--benchmark", "nonesuch", "--models", "random", "--results-dir", tmp_path,
                           capsys=capsys)
    assert code == 2 and "nonesuch" in err
