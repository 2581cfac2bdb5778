# Start-up work done once: validate the config, merge the scale preset, and define the helpers the
# stage files share (paths, input functions, wildcard constraints).
import json
import os
import sys

from snakemake.utils import validate

from softlabels import config as softlabels_config

validate(config, schema="../schemas/config.schema.yaml")

# The effective configuration: the base with `scales.<scale>` merged over it, validated again.
# Mutating the global dict keeps `config[...]` in every rule file equal to what the CLI sees.
_effective = softlabels_config.resolve(config)
config.clear()
config.update(_effective)

SCALE = config["scale"]
RESOURCES = config["resources_dir"]
# Rules call the `softlabels` command; make the one beside this interpreter (the venv's) win on PATH.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
CLI = "softlabels"


wildcard_constraints:
    scheme="|".join(sorted(config["schemes"])),
    seed=r"\d+",
    source="|".join(sorted(config["sources"])),


def resource(name):
    """Path of a downloaded input under resources_dir, by its key in `sources`."""
    return os.path.join(RESOURCES, config["sources"][name]["file"])


def config_args():
    """The CLI options that hand the effective top-level settings to a `softlabels` subcommand."""
    args = [f"scale={SCALE}"]
    if config.get("data_mirror"):
        args.append(f"data_mirror={config['data_mirror']}")
    args.append(f"resources_dir={RESOURCES}")
    args.append(f"device={config['device']}")
    return "--config " + " ".join(args)


# Stage files append their final targets here; `rule all` asks for all of them.
FINAL_OUTPUTS = []


def get_final_output():
    return list(FINAL_OUTPUTS)
