"""`softlabels elicit ...`: collect soft labels of one's own and hand them to the pipeline.

  softlabels elicit check  STUDY.yaml                       validate a study file (nothing written)
  softlabels elicit serve  STUDY.yaml [--db F] [--port N]   run the study (127.0.0.1 unless --host)
  softlabels elicit links  STUDY.yaml --base-url URL (--id ID ... | --ids FILE | --study-link) [--out F]
                                                            signed participant links
  softlabels elicit export STUDY.yaml --out F [--db F]      tidy responses CSV (soft_label) / H-Mix table (mixing),
                                                            flagged answers apart (--flagged F)
  softlabels elicit import --responses F --out results/data/own_responses.csv
                                                            check own responses for the chapter-3 schemes
"""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

from softlabels.arguments import UserError, add_config_arguments, config_from_args
from softlabels.data.io import DataError, write_csv
from softlabels.elicit import validate as V
from softlabels.elicit.access import Access
from softlabels.elicit.export import export_table, flagged_table
from softlabels.elicit.importer import check_own_responses
from softlabels.elicit.store import StoreError, open_store
from softlabels.elicit.study import StudyError, load_study
from softlabels.elicit.validate import MIN_TOKEN

TOKEN_ENV = "SOFTLABELS_ELICIT_TOKEN"


def _add_serve(sub) -> None:
    """`softlabels elicit serve` and its limits (`softlabels.elicit.server.ServerOptions`)."""
    q = sub.add_parser("serve", help="serve a study", description="Serve a study until interrupted (Ctrl-C).")
    q.add_argument("study", help="study YAML file")
    q.add_argument("--db", default=None, help="SQLite file of the study's responses (default: STUDY with .sqlite)")
    q.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    q.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port)")
    token = q.add_mutually_exclusive_group()
    token.add_argument("--admin-token-file", default=None, metavar="FILE",
                       help=f"file whose first line is the token for the admin pages (at least {MIN_TOKEN} "
                            f"characters, {V.MIN_TOKEN_KINDS} different ones, no repeated pattern); default: "
                            f"${TOKEN_ENV}, else the token set before (the database keeps its salted hash), else a "
                            "new random one, printed once")  # fmt: skip
    token.add_argument("--admin-token", default=None,
                       help="the token itself, as --admin-token-file; other users of the machine can read it in "
                            "`ps`, so prefer the file or the environment variable")  # fmt: skip
    q.add_argument("--public-url", default=None,
                   help="the address participants reach, e.g. https://example.org/study/ behind a proxy (used in the "
                        "printed links; default http://HOST:PORT/)")  # fmt: skip
    q.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                   help="a reverse proxy's address (repeatable, or comma-separated) whose X-Forwarded-For header "
                        "gives the client address; without it the header is ignored")  # fmt: skip
    q.add_argument("--request-timeout", type=float, default=10.0,
                   help="seconds for one request's line, headers and body to arrive (default 10); 408 and close")
    q.add_argument("--keepalive-timeout", type=int, default=5, help="seconds an idle connection stays open (default 5)")
    q.add_argument("--max-body", type=int, default=64 * 1024, help="largest request body in bytes (default 65536)")
    q.add_argument("--max-connections", type=int, default=200,
                   help="connections and requests at once (default 200; 503 beyond)")
    q.add_argument("--quiet", action="store_true", help="no per-request log lines")
    add_config_arguments(q)  # labels.gamma: the T2-Clamp γ of the progress page's entropy histogram
    q.set_defaults(func=run_serve)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "elicit",
        help="collect soft labels with a small web app and feed them to the pipeline",
        description="Run an elicitation study (soft-label form or mixing-factor task) and export its responses "
        "in the tables the pipeline reads.",
    )
    sub = p.add_subparsers(dest="elicit_command", metavar="SUBCOMMAND", required=True)

    q = sub.add_parser("check", help="validate a study file", description="Validate a study file and list what it shows.")
    q.add_argument("study", help="study YAML file")
    q.set_defaults(func=run_check)

    _add_serve(sub)

    q = sub.add_parser("links", help="signed participant links",
                       description="Print (or write as CSV) each participant's signed link, or the study-level link "
                       "for a platform that fills in the ID (access.mode: study_link). The signing secret is kept in "
                       "the study database, made on first use.")  # fmt: skip
    q.add_argument("study", help="study YAML file")
    q.add_argument("--db", default=None, help="SQLite file of the study (default: STUDY with .sqlite)")
    q.add_argument("--base-url", required=True, help="the page's public address, e.g. https://example.org/study/")
    q.add_argument("--id", action="append", default=[], dest="ids", metavar="ID", help="a participant ID (repeatable)")
    q.add_argument("--ids", dest="ids_file", default=None, help="file of participant IDs, one a line")
    q.add_argument("--study-link", action="store_true",
                   help="the one study-level link with the platform's ID placeholder instead")
    q.add_argument("--placeholder", default="{{%PROLIFIC_PID%}}",
                   help="the platform's ID placeholder for --study-link (default {{%%PROLIFIC_PID%%}})")
    q.add_argument("--out", default=None, help="CSV file (participant,link) instead of printing")
    q.set_defaults(func=run_links)

    q = sub.add_parser("export", help="write the responses as the pipeline's table",
                       description="soft_label studies: the tidy per-response CSV that `export-labels --responses` "
                       "reads; mixing studies: the H-Mix judgment table (hmix_judgments.csv layout).")  # fmt: skip
    q.add_argument("study", help="study YAML file")
    q.add_argument("--db", default=None, help="SQLite file of the study (default: STUDY with .sqlite)")
    q.add_argument("--out", required=True, help="output CSV of the answers that count")
    q.add_argument("--flagged", default=None,
                   help="CSV of the flagged answers (image not fetched, too fast), with the reason in column 'flag' "
                        "(default: OUT with .flagged.csv)")  # fmt: skip
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
    return UserError(str(exc))


def _load(study_path: str):
    try:
        return load_study(study_path)
    except StudyError as exc:
        raise _user_error(exc) from None


def default_db(study_path: str | Path) -> Path:
    return Path(study_path).with_suffix(".sqlite")


def _open(study, db: str | None, create: bool):
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


def _base_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise _user_error(ValueError(f"--base-url/--public-url: {url!r} is not an http(s) address"))
    return url if url.endswith("/") else url + "/"


def given_token(args) -> tuple[str | None, str]:
    """(the admin token given, where from): --admin-token-file (its first line), --admin-token or $TOKEN_ENV; (None,
    "") when none is. A weak one stops the command, naming its source."""
    if args.admin_token_file:
        source = "--admin-token-file"
        try:
            lines = Path(args.admin_token_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise _user_error(OSError(f"{source}: cannot read {args.admin_token_file} ({exc})")) from None
        given = lines[0].strip() if lines else ""
    elif args.admin_token is not None:
        source, given = "--admin-token", args.admin_token
    elif os.environ.get(TOKEN_ENV):
        source, given = f"${TOKEN_ENV}", os.environ[TOKEN_ENV]
    else:
        return None, ""
    reason = V.weak_token(given)
    if reason:
        raise _user_error(ValueError(f"{source}: the admin token is too weak: {reason} (leave it out and a random "
                                     "one is made)"))  # fmt: skip
    return given, source


def run_serve(args) -> int:
    from softlabels.elicit.server import ServerOptions, StudyServer  # Starlette and uvicorn: only to serve

    given, source = given_token(args)
    if source == "--admin-token":
        print(f"note: --admin-token shows in `ps` to every user of this machine; --admin-token-file or ${TOKEN_ENV} "
              "keep it out of sight", file=sys.stderr)  # fmt: skip
    for flag, value, low in (("--request-timeout", args.request_timeout, 0.1), ("--keepalive-timeout",
                             args.keepalive_timeout, 1), ("--max-body", args.max_body, 1024),
                             ("--max-connections", args.max_connections, 2)):  # fmt: skip
        if value < low:
            raise _user_error(ValueError(f"{flag}: must be at least {low:g}, got {value:g}"))
    public = _base_url(args.public_url) if args.public_url else None
    gamma = config_from_args(args)["labels"]["gamma"]
    study = _load(args.study)
    store = _open(study, args.db, create=True)
    made = store.admin_token(given)
    trusted = [a.strip() for item in args.trusted_proxy for a in item.split(",") if a.strip()]
    options = ServerOptions(request_timeout=args.request_timeout, keepalive_timeout=args.keepalive_timeout,
                            max_body=args.max_body, max_connections=args.max_connections, trusted_proxies=trusted,
                            quiet=args.quiet)  # fmt: skip
    try:
        server = StudyServer(store, args.host, args.port, options, gamma=gamma)
    except OSError as exc:
        store.close()
        raise _user_error(OSError(f"--host/--port: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})")) from None
    host = server.address[0]
    if public is None:
        shown = "127.0.0.1" if host == "0.0.0.0" else ("::1" if host == "::" else host)
        public = (f"http://[{shown}]:{server.address[1]}/" if ":" in shown else f"http://{shown}:{server.address[1]}/")
        if host in ("0.0.0.0", "::"):
            print(f"listening on all addresses ({host}); give --public-url for the links participants use")
    print(f"study '{study['title']}' ({study.task}, {len(study.stimuli)} stimuli) -> {store.path}")
    print(f"listening:    {server.url} (request timeout {options.request_timeout:g} s, bodies up to "
          f"{options.max_body} bytes, {options.max_connections} connections)")  # fmt: skip
    if study["access"]["mode"] == "study_link":
        print(f"study link:   {server.access.study_link(public, '{{%' + study['participant_param'] + '%}}')}")
    print(f"participants: signed links from `softlabels elicit links {args.study} --base-url {public} --ids FILE`")
    if made:
        print(f"admin token:  {made}   (made now and shown this once; {store.path} keeps only its salted hash)")
    elif given is not None:
        print(f"admin token:  set from {source} ({store.path} keeps only its salted hash)")
    else:
        print("admin token:  the one set before (shown when it was made; --admin-token-file sets a new one)")
    print(f"progress:     {public}admin/progress?token=<admin token>")
    print(f"export:       {public}admin/export.csv?token=<admin token>", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.sock.close()
        store.close()
    return 0


def run_links(args) -> int:
    base = _base_url(args.base_url)
    study = _load(args.study)
    ids = list(args.ids)
    if args.ids_file:
        try:
            ids += [line.strip() for line in Path(args.ids_file).read_text().splitlines() if line.strip()]
        except OSError as exc:
            raise _user_error(OSError(f"--ids: cannot read {args.ids_file} ({exc.strerror})")) from None
    if not ids and not args.study_link:
        raise _user_error(ValueError("give participant IDs (--id ID, --ids FILE) or --study-link"))
    bad = [i for i in ids if not V.PARTICIPANT_ID.fullmatch(i)]
    if bad:
        raise _user_error(ValueError(f"--id/--ids: malformed participant ID(s) {bad[:5]} (letters, digits, '.', "
                                     "'_', '-'; at most 64)"))  # fmt: skip
    store = _open(study, args.db, create=True)
    try:
        access = Access(store.secret(), study["access"]["mode"], study["participant_param"], study["access"]["sig_param"])
    finally:
        store.close()
    if args.study_link:
        try:
            rows = [("*", access.study_link(base, args.placeholder))]
        except ValueError as exc:
            raise _user_error(ValueError(f"{study.path}: {exc}")) from None
    else:
        rows = [(i, access.link(base, i)) for i in ids]
    if args.out:
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["participant", "link"])
            writer.writerows(rows)
        print(f"{args.out}: {len(rows)} link(s)")
    else:
        for _, link in rows:
            print(link)
    return 0


def run_export(args) -> int:
    study = _load(args.study)
    store = _open(study, args.db, create=False)
    try:
        table, flagged = export_table(store), flagged_table(store)
    finally:
        store.close()
    flagged_path = args.flagged or str(Path(args.out).with_suffix(".flagged.csv"))
    write_csv(args.out, table)
    write_csv(flagged_path, flagged)
    print(f"{args.out}: {len(table)} responses from {table['subject'].nunique()} participants over "
          f"{table.iloc[:, 0].nunique()} images ({study.task}); {flagged_path}: {len(flagged)} flagged answers "
          "(not counted: image not fetched or too fast)")  # fmt: skip
    return 0


def run_import(args) -> int:
    config = config_from_args(args)
    try:
        table = check_own_responses(args.responses, args.splits, config["evaluation"]["cifar10s_holdout"]["size"])
    except (DataError, ValueError) as exc:
        raise _user_error(exc) from None
    write_csv(args.out, table)
    print(f"{args.out}: {len(table)} responses from {table['subject'].nunique()} participants over "
          f"{table['image'].nunique()} CIFAR-10 images, from {args.responses}")  # fmt: skip
    return 0
