"""Subcommands of the data stage: `fetch` one public source, `parse-*` raw files into `results/data/`, and
`export-*` the parsed tables in the upstream JSON layouts.

Inputs default to the configured download (`resources_dir/<file>`), fetched first when missing, so every
command also works by hand; the Snakemake rules pass explicit paths. A path named on the command line must
exist: the command stops, naming it, and writes nothing; it never reads other data instead.
"""

from __future__ import annotations

import functools
from pathlib import Path

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.data.cifar10 import write_cifar10_test, write_cifar10_train, write_splits
from softlabels.data.cifar10h import write_cifar10h
from softlabels.data.cifar10s import read_responses, write_cifar10s
from softlabels.data.download import collect_provenance, fetch_from_config, resource_path
from softlabels.data.exports import hmix_inferences_json, responses_json
from softlabels.data.hmix import load_judgments, write_judgments, write_soft_responses, write_stimuli
from softlabels.data.io import DataError, write_json

RESULTS = Path("results/data")


#: The input-file options of this stage's commands.
INPUT_OPTIONS = ("archive", "train", "test", "counts", "probs", "raw", "stimulus_list", "responses", "judgments",
                 "soft", "cifar10")


def _user_errors(func):
    """Report bad inputs (DataError) as a clean `softlabels` error (exit status 2); every input path named on
    the command line is checked first, before anything is fetched or written."""

    @functools.wraps(func)
    def wrapper(args):
        try:
            for option in INPUT_OPTIONS:
                if getattr(args, option, None) is not None:
                    _named(getattr(args, option))
            return func(args)
        except DataError as exc:
            raise UserError(str(exc)) from None

    return wrapper


def _config(args) -> dict:
    return config_from_args(args)


def _named(path: str) -> Path:
    """A path the user named: it must be an existing file."""
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found (named on the command line)")
    return Path(path)


def _source(path: str | None, config: dict, key: str) -> Path:
    """An input file: the given path (which must exist), or the configured download of `key` (fetched when
    missing; the log names it)."""
    if path is not None:
        return _named(path)
    default = resource_path(config, key)
    source = default if default.exists() else fetch_from_config(key, config)
    print(f"{key}: reading {source}", flush=True)
    return source


def _parsed_table(path: str | None, name: str, config: dict, build) -> Path:
    """A parsed table: the given path, else results/data/<name>, else a cache under resources_dir/parsed/
    built by `build(config, out_path)` when missing (so the exports work without the workflow)."""
    if path is not None:
        return _named(path)
    for candidate in (RESULTS / name, Path(config["resources_dir"]) / "parsed" / name):
        if candidate.exists():
            return candidate
    cached = Path(config["resources_dir"]) / "parsed" / name
    print(f"{name} not found under {RESULTS}; building it in {cached.parent}", flush=True)
    build(config, cached)
    return cached


def _build_responses(config, out):
    write_cifar10s(_source(None, config, "cifar10s_raw"), out)


def _build_judgments(config, out):
    write_judgments(_source(None, config, "hmix_mixing"), _source(None, config, "hmix_stimuli"), out)


@_user_errors
def cmd_fetch(args) -> int:
    config = _config(args)
    fetch_from_config(args.source, config, force=args.force)
    return 0


@_user_errors
def cmd_parse_cifar10(args) -> int:
    config = _config(args)
    write_cifar10_test(_source(args.archive, config, "cifar10"), args.out)
    print(f"wrote {args.out}")
    return 0


@_user_errors
def cmd_parse_cifar10_train(args) -> int:
    config = _config(args)
    try:
        write_cifar10_train(_source(args.archive, config, "cifar10"), args.out)
    except DataError as exc:
        raise DataError(f"{exc}; the hyperparameter sweeps need the training batches of the official CIFAR-10 "
                        "archive (an offline mirror may hold the test batch only)") from None
    print(f"wrote {args.out}")
    return 0


@_user_errors
def cmd_parse_splits(args) -> int:
    config = _config(args)
    write_splits(_source(args.train, config, "train_indices"), _source(args.test, config, "test_indices"), args.out)
    print(f"wrote {args.out}")
    return 0


@_user_errors
def cmd_parse_cifar10h(args) -> int:
    config = _config(args)
    write_cifar10h(_source(args.counts, config, "cifar10h_counts"), _source(args.probs, config, "cifar10h_probs"),
                   args.out, args.annotators)
    print(f"wrote {args.out} and {args.annotators}")
    return 0


@_user_errors
def cmd_parse_cifar10s(args) -> int:
    config = _config(args)
    table = write_cifar10s(_source(args.raw, config, "cifar10s_raw"), args.out)
    per_image = table.groupby("image").size().value_counts().sort_index()
    print(f"wrote {args.out}: {len(table)} responses, {table['subject'].nunique()} subjects, "
          f"{table['image'].nunique()} images; responses per image {per_image.to_dict()}")
    return 0


@_user_errors
def cmd_parse_hmix_judgments(args) -> int:
    config = _config(args)
    table = write_judgments(_source(args.raw, config, "hmix_mixing"),
                            _source(args.stimulus_list, config, "hmix_stimuli"), args.out)
    first = table[table["first_collection"]]
    print(f"wrote {args.out}: {len(table)} judgments of {table['stimulus'].nunique()} stimuli; first collection "
          f"{first['stimulus'].nunique()} stimuli, {len(first)} judgments, per stimulus "
          f"{first.groupby('stimulus').size().value_counts().sort_index().to_dict()}")
    return 0


@_user_errors
def cmd_parse_hmix_soft(args) -> int:
    config = _config(args)
    table = write_soft_responses(_source(args.raw, config, "hmix_soft"), args.out)
    lambdas = table.drop_duplicates("stimulus")["lambda_f"].value_counts().sort_index()
    print(f"wrote {args.out}: {len(table)} responses over {table['stimulus'].nunique()} stimuli; "
          f"stimuli per lambda {lambdas.to_dict()}")
    return 0


@_user_errors
def cmd_parse_hmix_stimuli(args) -> int:
    arrays = write_stimuli(_named(args.judgments), _named(args.soft), _named(args.cifar10), args.out)
    print(f"wrote {args.out}: {len(arrays['names'])} stimuli ({int(arrays['first_collection'].sum())} in the "
          f"first collection)")
    return 0


@_user_errors
def cmd_export_responses(args) -> int:
    config = _config(args)
    path = _parsed_table(args.responses, "cifar10s_responses.csv", config, _build_responses)
    data = responses_json(read_responses(path))
    write_json(args.out, data, indent=None)
    print(f"wrote {args.out}: {len(data)} images, {sum(map(len, data.values()))} responses (from {path})")
    return 0


@_user_errors
def cmd_export_hmix(args) -> int:
    config = _config(args)
    path = _parsed_table(args.judgments, "hmix_judgments.csv", config, _build_judgments)
    data = hmix_inferences_json(load_judgments(path))
    write_json(args.out, data, indent=None)
    print(f"wrote {args.out}: {len(data)} stimuli (from {path})")
    return 0


@_user_errors
def cmd_provenance(args) -> int:
    provenance = collect_provenance(_config(args))
    write_json(args.out, provenance)
    for key, record in provenance["sources"].items():
        flag = "  APPROXIMATE" if record["approximate"] else ""
        print(f"{key}: {record['file']} from {record['origin']}{flag}")
    print(f"wrote {args.out}")
    return 0


def _command(sub, name: str, func, help_text: str):
    """A subcommand `name` running `func`, with the config options every command of this stage takes."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    add_config_arguments(parser)
    parser.set_defaults(func=func)
    return parser


def _register_downloads(sub) -> None:
    """`fetch` and `provenance`."""
    p = _command(sub, "fetch", cmd_fetch, "download one public source (config 'sources') and verify its checksum")
    p.add_argument("source", help="key under 'sources' in config.yaml, e.g. cifar10s_raw, or cifar10c (the tar of "
                                  "evaluation.corruption.cifar10c)")
    p.add_argument("--force", action="store_true", help="fetch again even if a verified file is present")

    p = _command(sub, "provenance", cmd_provenance,
                 "where every configured download came from (official URL or mirror, sha256, approximation)")
    p.add_argument("--out", default=str(RESULTS / "provenance.json"))


def _register_parsers(sub) -> None:
    """`parse-*`: raw downloads -> results/data/."""
    p = _command(sub, "parse-cifar10", cmd_parse_cifar10, "CIFAR-10 test batch -> cifar10_test.npz")
    p.add_argument("--archive", help="cifar-10-python.tar.gz (default: the configured download)")
    p.add_argument("--out", default=str(RESULTS / "cifar10_test.npz"))

    p = _command(sub, "parse-cifar10-train", cmd_parse_cifar10_train,
                 "CIFAR-10 training batches data_batch_1..5 -> cifar10_train.npz (hyperparameter sweeps)")
    p.add_argument("--archive", help="cifar-10-python.tar.gz (default: the configured download)")
    p.add_argument("--out", default=str(RESULTS / "cifar10_train.npz"))

    p = _command(sub, "parse-splits", cmd_parse_splits, "Uma et al. train/test index files -> splits.npz")
    p.add_argument("--train", help="train_indices.npy (default: the configured download)")
    p.add_argument("--test", help="test_indices.npy (default: the configured download)")
    p.add_argument("--out", default=str(RESULTS / "splits.npz"))

    p = _command(sub, "parse-cifar10h", cmd_parse_cifar10h,
                 "CIFAR-10H counts/probs -> cifar10h.npz and the per-annotator table")
    p.add_argument("--counts", help="cifar10h-counts.npy (default: the configured download)")
    p.add_argument("--probs", help="cifar10h-probs.npy (default: the configured download)")
    p.add_argument("--out", default=str(RESULTS / "cifar10h.npz"))
    p.add_argument("--annotators", default=str(RESULTS / "cifar10h_annotators.csv"))

    p = _command(sub, "parse-cifar10s", cmd_parse_cifar10s, "CIFAR-10S raw_human_data.csv -> cifar10s_responses.csv")
    p.add_argument("--raw", help="raw_human_data.csv (default: the configured download)")
    p.add_argument("--out", default=str(RESULTS / "cifar10s_responses.csv"))

    p = _command(sub, "parse-hmix-judgments", cmd_parse_hmix_judgments,
                 "H-Mix mixing-factor inferences -> hmix_judgments.csv")
    p.add_argument("--raw", help="hmix_infer_mixing_factor.csv (default: the configured download)")
    p.add_argument("--stimulus-list", help="first-collection stimulus list (default: the configured download)")
    p.add_argument("--out", default=str(RESULTS / "hmix_judgments.csv"))

    p = _command(sub, "parse-hmix-soft", cmd_parse_hmix_soft,
                 "H-Mix categorical soft labels -> hmix_soft_responses.csv")
    p.add_argument("--raw", help="hmix_categorical_soft_labels.csv (default: the configured download)")
    p.add_argument("--out", default=str(RESULTS / "hmix_soft_responses.csv"))

    p = _command(sub, "parse-hmix-stimuli", cmd_parse_hmix_stimuli,
                 "rebuild every H-Mix stimulus image from the CIFAR-10 test set -> hmix_stimuli.npz")
    p.add_argument("--judgments", default=str(RESULTS / "hmix_judgments.csv"))
    p.add_argument("--soft", default=str(RESULTS / "hmix_soft_responses.csv"))
    p.add_argument("--cifar10", default=str(RESULTS / "cifar10_test.npz"))
    p.add_argument("--out", default=str(RESULTS / "hmix_stimuli.npz"))


def _register_exports(sub) -> None:
    """`export-*`: parsed tables in the upstream JSON layouts."""
    p = _command(sub, "export-responses", cmd_export_responses,
                 "CIFAR-10S responses in the layout of human_soft_labels_data.json")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--responses", help="responses table (default: results/data/cifar10s_responses.csv, else "
                                       "built from the raw download in resources_dir/parsed/)")

    p = _command(sub, "export-hmix", cmd_export_hmix, "H-Mix judgments in the layout of processed_hmix_inferences.json")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--judgments", help="judgments table (default: results/data/hmix_judgments.csv, else "
                                       "built from the raw downloads in resources_dir/parsed/)")


def register(subparsers) -> None:
    """Add this stage's subcommands to the `softlabels` parser."""
    _register_downloads(subparsers)
    _register_parsers(subparsers)
    _register_exports(subparsers)
