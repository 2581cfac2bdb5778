"""Stage: data. Downloads of the public inputs (`download`), parsing into `results/data/` (`cifar10`,
`cifar10h`, `cifar10s`, `hmix`) and exports in the upstream JSON layouts (`exports`)."""

from softlabels.data.cifar10 import load_cifar10_test
from softlabels.data.cifar10s import read_responses, parse_cifar10s, parse_elicitation
from softlabels.data.download import ChecksumError, DownloadError, fetch, fetch_from_config
from softlabels.data.exports import hmix_inferences_json, responses_json
from softlabels.data.hmix import load_judgments, parse_judgments, parse_soft_responses
from softlabels.data.io import DataError

__all__ = [
    "ChecksumError",
    "DataError",
    "DownloadError",
    "fetch",
    "fetch_from_config",
    "hmix_inferences_json",
    "load_cifar10_test",
    "load_judgments",
    "read_responses",
    "parse_cifar10s",
    "parse_elicitation",
    "parse_judgments",
    "parse_soft_responses",
    "responses_json",
]
