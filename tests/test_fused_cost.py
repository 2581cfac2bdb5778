"""benchmarks/paper_cost.py runs on the CPU with small sizes and prints both estimates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_cost():
    spec = importlib.util.spec_from_file_location("paper_cost", REPO / "benchmarks" / "paper_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_cost_prints_throughput_and_both_estimates(paper_cost, capsys):
    assert paper_cost.rate_at({1: 100.0, 2: 180.0, 4: 170.0}, 8) == 180.0
    assert paper_cost.rate_at({1: 100.0, 2: 180.0}, 1) == 100.0
    assert paper_cost.main(["--device", "cpu", "--models", "resnet8a:16", "--max-group", "2", "--steps", "1",
                            "--threads", "1", "--scale", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "group of   1:" in out and "group of   2:" in out
    assert "today: " in out and "fused: " in out and "device-hours" in out
