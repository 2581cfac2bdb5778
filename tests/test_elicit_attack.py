"""The findings of an outside attack pass on the elicitation app (issue 28), one test (or two) each; every one of
them fails on the code the pass attacked:

1. `check` took a mixing pair of two image sizes, whose images then answered 500.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from elicit.fixtures import (  # noqa: E402
    fake_cifar10,
    write_study,
)

from softlabels.cli import main as cli_main  # noqa: E402


@pytest.fixture
def source(tmp_path):
    return fake_cifar10(tmp_path / "cifar.npz")


# ------------------------------------------------------------------------------------------- 1. image sizes
def test_check_refuses_a_mixing_pair_of_two_sizes(tmp_path, capsys):
    from PIL import Image

    root = tmp_path / "imgs"
    for cls, (width, height) in (("cat", (8, 8)), ("dog", (16, 12))):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((height, width, 3), 120, dtype=np.uint8)).save(root / cls / "a.png")
    path = write_study(tmp_path / "sizes.yaml", title="sizes", task="mixing",
                       images={"folder": {"path": str(root), "classes": ["cat", "dog"]}},
                       mixing={"pairs": [["cat/a.png", "dog/a.png"]], "lambdas": [0.5]}, responses_per_image=1,
                       trials_per_participant=1, repeats=0)  # fmt: skip
    assert cli_main(["elicit", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "mixing.pairs[0]" in err and "'cat/a.png' (8×8 px)" in err and "'dog/a.png' (16×12 px)" in err, err


