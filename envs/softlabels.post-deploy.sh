#!/usr/bin/env bash
# Install the softlabels package (no dependencies: the env file has them) into the new conda environment.
# Snakemake runs this from its working directory; SOFTLABELS_SRC names the checkout when that is elsewhere.
set -euo pipefail
python -m pip install --no-deps "${SOFTLABELS_SRC:-.}"
