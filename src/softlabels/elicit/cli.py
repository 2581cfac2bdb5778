"""`softlabels elicit ...`: collect soft labels of one's own and hand them to the pipeline.

  softlabels elicit check  STUDY.yaml                       validate a study file (nothing written)
  softlabels elicit serve  STUDY.yaml [--db F] [--port N]   run the study (127.0.0.1 unless --host)
  softlabels elicit export STUDY.yaml --out F [--db F]      tidy responses CSV (soft_label) / H-Mix table (mixing)
  softlabels elicit import --responses F --out results/data/own_responses.csv
                                                            check own responses for the chapter-3 schemes
"""

from __future__ import annotations

import os
from pathlib import Path


def register(subparsers) -> None:
    from softlabels.cli import add_config_arguments

    p = subparsers.add_parser(
        "elicit",
        help="collect soft labels with a local web app and feed them to the pipeline",
        description="Run an elicitation study (soft-label form or mixing-factor task) and export its responses "
        "in the tables the pipeline reads.",
    )
    sub = p.add_subparsers(dest="elicit_command", metavar="SUBCOMMAND", required=True)

    q = sub.add_parser("check", help="validate a study file", description="Validate a study file and list what it shows.")
    q.add_argument("study", help="study YAML file")
    q.set_defaults(func=run_check)

    q = sub.add_parser("serve", help="serve a study", description="Serve a study until interrupted (Ctrl-C).")
    q.add_argument("study", help="study YAML file")
    q.add_argument("--db", default=None, help="SQLite file of the study's responses (default: STUDY with .sqlite)")
    q.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    q.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    q.add_argument("--admin-token", default=None,
                   help="token for the progress and export pages (default: $SOFTLABELS_ELICIT_TOKEN, else the "
                        "study database's stored token, else a new random one)")  # fmt: skip
    q.add_argument("--quiet", action="store_true", help="no per-request log lines")
    q.set_defaults(func=run_serve)

    q = sub.add_parser("export", help="write the responses as the pipeline's table",
                       description="soft_label studies: the tidy per-response CSV that `export-labels --responses` "
                       "reads; mixing studies: the H-Mix judgment table (hmix_judgments.csv layout).")  # fmt: skip
    q.add_argument("study", help="study YAML file")
    q.add_argument("--db", default=None, help="SQLite file of the study (default: STUDY with .sqlite)")
    q.add_argument("--out", required=True, help="output CSV")
    q.set_defaults(func=run_export)

    q = sub.add_parser(
        "import",
        help="check own responses for the chapter-3 schemes (workflow rule elicit_import)",
        description="Validate a tidy responses CSV of one's own (CIFAR-10 test images) and write it where the "
        "chapter-3 runs read it. Images in the CIFAR-10H evaluation hold-out (splits.npz 'test') are refused.",
    )
    add_config_arguments(q)
    q.add_argument("--responses", required=True, help="tidy responses CSV (e.g. from `softlabels elicit export`)")
    q.add_argument("--splits", default="results/data/splits.npz", help="splits.npz of the data stage")
    q.add_argument("--out", required=True, help="output CSV (results/data/own_responses.csv in the workflow)")
    q.set_defaults(func=run_import)


def _user_error(exc: Exception):
    from softlabels.cli import UserError

    return UserError(str(exc))


def _load(study_path: str):
    from softlabels.elicit.study import StudyError, load_study

    try:
        return load_study(study_path)
    except StudyError as exc:
        raise _user_error(exc) from None


def default_db(study_path: str | Path) -> Path:
    return Path(study_path).with_suffix(".sqlite")


def _open(study, db: str | None, create: bool):
    from softlabels.elicit.store import StoreError, open_store

    path = Path(db) if db else default_db(study.path)
    if not create and not path.exists():
        raise _user_error(FileNotFoundError(f"{path}: no study database (run `softlabels elicit serve` first, or --db)"))
    try:
        return open_store(path, study)
    except StoreError as exc:
        raise _user_error(exc) from None


def run_check(args) -> int:
    study = _load(args.study)
    print(f"{args.study}: {study.task} study '{study['title']}': {len(study.stimuli)} stimuli, "
          f"M = {study['responses_per_image']}, {study['trials_per_participant']} trials per participant "
          f"({study['repeats']} repeats)")  # fmt: skip
    return 0


def run_serve(args) -> int:
    from softlabels.elicit.server import StudyServer

    study = _load(args.study)
    store = _open(study, args.db, create=True)
    token = store.admin_token(args.admin_token or os.environ.get("SOFTLABELS_ELICIT_TOKEN") or None)
    try:
        server = StudyServer((args.host, args.port), store, token, quiet=args.quiet)
    except OSError as exc:
        raise _user_error(OSError(f"cannot listen on {args.host}:{args.port} ({exc.strerror})")) from None
    param = study["participant_param"]
    print(f"study '{study['title']}' ({study.task}, {len(study.stimuli)} stimuli) -> {store.path}")
    print(f"participants: {server.url}/?{param}=<participant id>")
    print(f"progress:     {server.url}/admin/progress?token={token}")
    print(f"export:       {server.url}/admin/export.csv?token={token}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    return 0


def run_export(args) -> int:
    from softlabels.data.io import write_csv
    from softlabels.elicit.export import export_table

    study = _load(args.study)
    store = _open(study, args.db, create=False)
    try:
        table = export_table(store)
    finally:
        store.close()
    write_csv(args.out, table)
    print(f"{args.out}: {len(table)} responses from {table['subject'].nunique()} participants over "
          f"{table.iloc[:, 0].nunique()} images ({study.task})")  # fmt: skip
    return 0


def run_import(args) -> int:
    from softlabels.cli import config_from_args
    from softlabels.data.io import DataError, write_csv
    from softlabels.elicit.importer import check_own_responses

    config = config_from_args(args)
    try:
        table = check_own_responses(args.responses, args.splits, config["evaluation"]["cifar10s_holdout"]["size"])
    except (DataError, ValueError) as exc:
        raise _user_error(exc) from None
    write_csv(args.out, table)
    print(f"{args.out}: {len(table)} responses from {table['subject'].nunique()} participants over "
          f"{table['image'].nunique()} CIFAR-10 images, from {args.responses}")  # fmt: skip
    return 0
