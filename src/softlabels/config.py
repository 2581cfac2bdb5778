"""Configuration: load `config.yaml`, merge the chosen scale preset, validate, and explain errors by key.

The same function serves the Snakemake workflow (`workflow/rules/common.smk`) and the `softlabels`
command, so both see one effective configuration.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from softlabels.vocabulary import keys_only_for, metrics_on

MIRROR_ENV = "SOFTLABELS_DATA_MIRROR"


class ConfigError(ValueError):
    """A configuration key is missing, unknown or has a wrong value; the message names the key."""


def _package_default(name: str) -> Path:
    """`softlabels/defaults/<name>`: in a checkout a symbolic link to the card's file, in a built wheel (and a
    non-editable install) a copy of it, carried as package data."""
    return Path(str(resources.files("softlabels").joinpath("defaults", name)))


def default_config_path() -> Path:
    """The default configuration: the card's top-level `config.yaml`."""
    return _package_default("config.yaml")


def schema_path() -> Path:
    """The configuration's JSON schema: the card's `workflow/schemas/config.schema.yaml`."""
    return _package_default("config.schema.yaml")


@functools.lru_cache(maxsize=1)
def config_schema() -> dict:
    """The config's JSON schema (`schema_path`), parsed once per process: the boolean coercion and the two
    validations of `resolve` read it (read-only)."""
    return yaml.safe_load(schema_path().read_text())


def pinned_inputs_path() -> Path:
    """The pinned public inputs: `softlabels/data/pinned.yaml` (package data): `sources` and the CIFAR-10-C tar."""
    return Path(str(resources.files("softlabels").joinpath("data", "pinned.yaml")))


def catalogue_path() -> Path:
    """The thesis' experiments: `softlabels/experiments/catalogue.yaml` (package data): `schemes`, `tables`,
    `figures`."""
    return Path(str(resources.files("softlabels").joinpath("experiments", "catalogue.yaml")))


def with_package_defaults(config: Mapping[str, Any]) -> dict:
    """`config` merged over what the package ships (`pinned_inputs_path`, `catalogue_path`): every source's file,
    URL and checksum and every thesis scheme, table and figure, unless the config sets it."""
    shipped = deep_merge(yaml.safe_load(pinned_inputs_path().read_text()), yaml.safe_load(catalogue_path().read_text()))
    return deep_merge(shipped, config)


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict:
    """Dicts merge key by key; any other value in `update` replaces the one in `base`. The result shares no
    dict or list with its arguments, nor between its own branches (`unshared`)."""
    merged = unshared(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = unshared(value)
    return merged


def unshared(value: Any) -> Any:
    """A copy of a tree of dicts and lists in which no two branches are the same object. YAML aliases
    (`chapter5: *quick_mixing`) load as one shared object, which `copy.deepcopy` would keep shared: editing one
    protocol's block would edit the other's."""
    if isinstance(value, Mapping):
        return {key: unshared(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(unshared(item) for item in value)
    return copy.deepcopy(value)


def _key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def validate(config: Mapping[str, Any], where: str = "config") -> None:
    """Check `config` against the JSON schema; raise ConfigError naming the offending key."""
    import jsonschema  # not needed with schema=False (benchmarks/device runs without it)

    schema = config_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for err in errors[:10]:
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            valid = sorted(err.schema.get("properties", {}))
            extra = sorted(set(err.instance) - set(valid))
            for name in extra:
                lines.append(unknown_key_message(path + [name], valid))
            continue
        if err.validator == "required":
            lines.append(f"'{_key_path(path)}': {err.message}")
            continue
        lines.append(f"key '{_key_path(path)}': {err.message}")
    if len(lines) == 1:
        raise ConfigError(f"invalid {where}: {lines[0]}")
    raise ConfigError(f"invalid {where}:\n  " + "\n  ".join(lines))


def unknown_key_message(path, valid) -> str:
    """`unknown key 'data_mirorr'; did you mean 'data_mirror'?` with the nearest valid keys at that level
    (difflib), or the valid keys there when none is near."""
    name = str(path[-1])
    near = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    where = _key_path(path)
    if near:
        return f"unknown key '{where}'; did you mean {' or '.join(repr(k) for k in near)}?"
    shown = ", ".join(valid[:12]) + (", ..." if len(valid) > 12 else "")
    return f"unknown key '{where}' (valid keys here: {shown})"


def coerce_booleans(config: dict) -> None:
    """Snakemake's --config reads only `True`/`False` as booleans: turn a top-level boolean key given as
    `true`/`false` (any case) into the boolean, in place, so `--config allow_paper_on_cpu=true` works."""
    schema = config_schema()
    for key, spec in schema.get("properties", {}).items():
        value = config.get(key)
        if spec.get("type") == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
            config[key] = value.lower() == "true"


#: The README section on offline use, named by the errors about the mirror and the network.
OFFLINE_HELP = 'README section "Offline use: data_mirror"'


def check_mirror(config: Mapping[str, Any]) -> None:
    """Refuse a `data_mirror` (or SOFTLABELS_DATA_MIRROR) that is not a folder with a MANIFEST.tsv."""
    mirror = config.get("data_mirror")
    if not mirror:
        return
    path = Path(mirror)
    if not path.is_dir():
        raise ConfigError(f"key 'data_mirror': {mirror} is not a folder (a mirror holds cifar-10/, cifar-10h/, "
                          f"... and MANIFEST.tsv; see the {OFFLINE_HELP})")
    if not (path / "MANIFEST.tsv").is_file():
        raise ConfigError(f"key 'data_mirror': {mirror} has no MANIFEST.tsv, so it is not a data mirror (see the "
                          f"{OFFLINE_HELP})")


def check_references(config: Mapping[str, Any]) -> None:
    """Cross-key checks the schema cannot express (rows name defined schemes, models have a base LR)."""
    schemes = config["schemes"]
    for group in ("tables", "figures"):
        for name, spec in config.get(group, {}).items():
            for row in spec["rows"]:
                if row not in schemes:
                    raise ConfigError(f"key '{group}.{name}.rows': scheme '{row}' is not defined under 'schemes'")
    for pname, proto in config["protocols"].items():
        if pname == "chapter3" and proto.get("augmenting_pairs") is not None:
            raise ConfigError("key 'protocols.chapter3.augmenting_pairs' does not apply to chapter 3 (only to the "
                              "chapter4 and chapter5 protocols, which train on the H-Mix augmenting set's images)")
        for model in proto["models"]:
            if model not in proto["base_lr"]:
                raise ConfigError(f"key 'protocols.{pname}.base_lr': no learning rate for model '{model}'")
    for sname, scheme in schemes.items():
        if scheme["protocol"] not in config["protocols"]:
            raise ConfigError(f"key 'schemes.{sname}.protocol': protocol '{scheme['protocol']}' is not defined")
        check_scheme_keys(sname, scheme)
    check_claims(config)
    check_sweeps(config)
    evaluation = config.get("evaluation", {})
    calibration = evaluation.get("calibration", {})
    if calibration.get("skip_last_bin"):  # the calibration metric needs two bins when it skips the last one
        sizes = {"evaluation.cifar10h_holdout_limit": (evaluation.get("cifar10h_holdout_limit") or 3000,
                                                       calibration.get("bin_size")),
                 "evaluation.cifar10s_holdout.size": (evaluation.get("cifar10s_holdout", {}).get("size"),
                                                      calibration.get("bin_size_cifar10s"))}
        for key, (n, bin_size) in sizes.items():
            if n is not None and bin_size and n < 2 * bin_size:
                raise ConfigError(f"key '{key}': {n} evaluation images leave fewer than two calibration bins of "
                                  f"{bin_size} (skip_last_bin drops one); use at least {2 * bin_size}")


def check_sweeps(config: Mapping[str, Any]) -> None:
    """Refuse a sweep (config `sweeps.grids`) whose scheme is not defined or whose key or `apply_to` key is not
    set, and, with `sweeps.apply`, a key two sweeps select; each message names the sweep."""
    grids = (config.get("sweeps") or {}).get("grids") or {}
    owner: dict[str, str] = {}
    missing = object()
    for name, grid in grids.items():
        if grid is None:
            continue
        if grid["scheme"] not in config["schemes"]:
            raise ConfigError(f"key 'sweeps.grids.{name}.scheme': scheme '{grid['scheme']}' is not defined under "
                              f"'schemes'")
        for key in [grid["key"], *(grid.get("apply_to") or [])]:
            if setting(config, key, missing) is missing:
                raise ConfigError(f"key 'sweeps.grids.{name}': {key} is not set in the configuration")
        if config["sweeps"].get("apply"):
            for key in grid.get("apply_to") or [grid["key"]]:
                if key in owner:
                    raise ConfigError(f"key 'sweeps.grids.{name}.apply_to': {key} is selected by sweep "
                                      f"'{owner[key]}' too (sweeps.apply: true needs one sweep per key)")
                owner[key] = name


#: The columns of a claims table (softlabels/report/claims.tsv, or `claims.file`), in order.
CLAIM_COLUMNS = ("id", "section", "table", "row_a", "row_b", "eval_set", "metric", "expect", "text")


def thesis_claims_path() -> Path:
    """The thesis' claims: `softlabels/report/claims.tsv`, package data beside thesis_values.csv."""
    return Path(str(resources.files("softlabels").joinpath("report", "claims.tsv")))


def read_claims(path: str | Path) -> list[dict]:
    """The claims of a claims table: a tab-separated file whose header is `CLAIM_COLUMNS`, one claim per line.
    Each field must be non-empty, `id` letters, digits and _, `expect` lower or higher; a refusal names the file
    and line. The references (table, rows, eval set, metric, unique ids) are checked by `check_claims`."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"key 'claims.file': cannot read the claims table {path} ({exc.strerror})") from None
    header = lines[0].split("\t") if lines else []
    if tuple(header) != CLAIM_COLUMNS:
        raise ConfigError(f"claims table {path}, line 1: the header must be the tab-separated columns "
                          f"{', '.join(CLAIM_COLUMNS)} (found: {', '.join(header) or 'nothing'})")
    claims = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = f"claims table {path}, line {number}"
        if len(fields) != len(CLAIM_COLUMNS):
            raise ConfigError(f"{where}: {len(fields)} tab-separated fields, expected {len(CLAIM_COLUMNS)}")
        claim = dict(zip(CLAIM_COLUMNS, (field.strip() for field in fields)))
        empty = [name for name, value in claim.items() if not value]
        if empty:
            raise ConfigError(f"{where}: empty field(s) {', '.join(empty)}")
        if not claim["id"].replace("_", "").isalnum():
            raise ConfigError(f"{where}: id '{claim['id']}' may hold only letters, digits and _")
        if claim["expect"] not in ("lower", "higher"):
            raise ConfigError(f"{where} (claim '{claim['id']}'): expect '{claim['expect']}' is not lower or higher")
        claims.append(claim)
    return claims


def with_claims_list(config: Mapping[str, Any]) -> dict:
    """`config` with `claims.list` filled from the claims table (`claims.file`, "" = the thesis' claims) unless
    the config writes its own `claims.list`."""
    claims = config.get("claims")
    if not claims or "list" in claims:
        return dict(config)
    out = dict(config)
    out["claims"] = {**claims, "list": read_claims(claims.get("file") or thesis_claims_path())}
    return out


def check_claims(config: Mapping[str, Any]) -> None:
    """Refuse a claim (config `claims.list`, filled from the claims table by `with_claims_list`) that names an
    unknown table/figure, a row not among that table's rows, an eval set the table does not show or a metric that
    eval set lacks, and a duplicate id; each message names the claim id. Refuse a `claims.targets` entry naming an
    unknown table/figure."""
    claims = config.get("claims")
    if not claims:
        return
    result_sets = {**config.get("tables", {}), **config.get("figures", {})}
    for target, tables in claims["targets"].items():
        for table in [] if tables == "all" else tables:
            if table not in result_sets:
                raise ConfigError(f"key 'claims.targets.{target}': table '{table}' is not defined under "
                                  f"'tables' or 'figures'")
    seen = set()
    for claim in claims["list"]:
        cid, table = claim["id"], claim["table"]
        where = f"key 'claims.list': claim '{cid}'"
        if cid in seen:
            raise ConfigError(f"{where}: duplicate id")
        seen.add(cid)
        if table not in result_sets:
            raise ConfigError(f"{where}: table '{table}' is not defined under 'tables' or 'figures'")
        spec = result_sets[table]
        for key in ("row_a", "row_b"):
            if claim[key] not in spec["rows"]:
                raise ConfigError(f"{where}: {key} '{claim[key]}' is not a row of {table} "
                                  f"(rows: {', '.join(spec['rows'])})")
        if claim["eval_set"] not in spec["eval_sets"]:
            raise ConfigError(f"{where}: eval_set '{claim['eval_set']}' is not an eval set of {table} "
                              f"(eval_sets: {', '.join(spec['eval_sets'])})")
        allowed = metrics_on(claim["eval_set"], compared=True)
        if claim["metric"] not in allowed:
            raise ConfigError(f"{where}: metric '{claim['metric']}' is not measured on eval set "
                              f"'{claim['eval_set']}' (metrics: {', '.join(allowed)})")


#: The scheme keys each protocol reads (thesis chapter 3: label sources; chapter 4: the augmenting set's labels;
#: chapter 5 / appendix C: mixing objectives over hard or soft endpoints).
PROTOCOL_KEYS = {
    "chapter3": ("protocol", "labels", "variety", "aggregate", "M", "n_soft"),
    "chapter4": ("protocol", "labels", "augment"),
    "chapter5": ("protocol", "labels", "variety", "aggregate", "M", "endpoints", "objective", "alpha", "kappa",
                 "detach_weight", "maxent_weight", "partners", "target_mix"),
}  # fmt: skip


def check_scheme_keys(name: str, scheme: Mapping[str, Any]) -> None:
    """Refuse a scheme key that its protocol (or the scheme's labels / objective) would ignore, naming
    `schemes.<name>.<key>`; a chapter-5 scheme's labels must match its endpoints (hard: hard; soft: cifar10s)."""
    protocol = scheme["protocol"]
    allowed = PROTOCOL_KEYS.get(protocol, ())
    for key in scheme:
        if key not in allowed:
            users = [p for p, keys in PROTOCOL_KEYS.items() if key in keys]
            raise ConfigError(f"key 'schemes.{name}.{key}' does not apply to protocol '{protocol}' "
                              f"(only to {', '.join(users) or 'no protocol'})")
        condition = keys_only_for(key)  # the label sources or objectives it applies to (softlabels.vocabulary)
        if condition is not None:
            other, default, values = condition
            if scheme.get(other, default) not in values:
                raise ConfigError(f"key 'schemes.{name}.{key}' applies only with {other}: {' | '.join(values)} "
                                  f"(this scheme has {other}: {scheme.get(other, default)})")
    if protocol == "chapter5":
        endpoints = scheme.get("endpoints", "hard")
        wanted = "cifar10s" if endpoints == "soft" else "hard"
        if scheme["labels"] != wanted:
            raise ConfigError(f"key 'schemes.{name}.labels': {endpoints} endpoints need labels: {wanted}")


_ABSENT = object()


def setting(config: Mapping[str, Any], key: str, default: Any = _ABSENT) -> Any:
    """The value at a dotted key path (`labels.gamma`); ConfigError naming the key when it is absent and no
    default is given."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is not _ABSENT:
                return default
            raise ConfigError(f"key '{key}' is not set in the configuration")
        node = node[part]
    return node


def settings_of(config: Mapping[str, Any], keys) -> dict:
    """{dotted key: value} of `keys` (None for an optional key that is absent): what a workflow rule declares
    as `params:` so that Snakemake's params rerun trigger sees every edit of a setting the job reads."""
    return {key: setting(config, key, None) for key in keys}


def set_dotted(tree: dict, key: str, value: Any) -> None:
    """tree[a][b][c] = value for the dotted key `a.b.c`, making the missing levels."""
    parts = key.split(".")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value


def select(config: Mapping[str, Any], keys) -> dict:
    """The nested sub-configuration holding only the dotted `keys` (absent ones left out). A subcommand that
    reads its config through this fails with a KeyError on any key it did not declare."""
    out: dict = {}
    missing = object()
    for key in keys:
        value = setting(config, key, missing)
        if value is not missing:
            set_dotted(out, key, copy.deepcopy(value))
    return out


def resolve(config: Mapping[str, Any], schema: bool = True) -> dict:
    """Effective configuration: the base over the package's defaults (`with_package_defaults`: the pinned inputs,
    the thesis' experiments), validated, then `scales[scale]` merged over it, the claims table read
    (`with_claims_list`), and validated again.
    `schema=False` skips the JSON-schema checks (which need jsonschema) but keeps the reference checks: for
    tools that only read the checked-in config.yaml where jsonschema may be absent (benchmarks/paper_cost.py)."""
    config = with_package_defaults(config)
    if schema:
        validate(config)
    scale = config["scale"]
    if scale not in config["scales"]:
        raise ConfigError(f"key 'scale': '{scale}' is not one of the presets under 'scales' "
                          f"({', '.join(config['scales'])})")
    effective = with_claims_list(deep_merge(config, config["scales"][scale]))
    if not effective.get("data_mirror"):
        effective["data_mirror"] = os.environ.get(MIRROR_ENV, "")
    if schema:
        validate(effective, where=f"config after merging scales.{scale}")
    check_references(effective)
    return effective


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` (value parsed as YAML), as in `snakemake --config key=value`."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value != "" else ""


def load(paths=None, overrides: Mapping[str, Any] | None = None, schema: bool = True) -> dict:
    """Read one or more config files (default: `default_config_path`; later files merge over earlier
    ones, as Snakemake's --configfile does), apply top-level overrides, resolve the scale (`resolve`;
    `schema=False` skips the JSON-schema validation)."""
    if paths is None or paths == [] or paths == ():
        paths = [default_config_path()]
    elif isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    config: dict = {}
    for path in map(Path, paths):
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(loaded).__name__}")
        config = deep_merge(config, loaded)
    # Nested overrides merge as Snakemake's --config does (`evaluation={corruption: {source: generate}}`).
    config = deep_merge(config, overrides or {})
    return resolve(config, schema=schema)


class UndeclaredSetting(ConfigError, KeyError):
    """A job read a config key its rule does not declare (`params: settings=settings(...)`)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DeclaredSettings(dict):
    """A job's configuration built from the settings its rule declares (`declared_config`): reading a key that
    is not there, with `[]` or `.get`, raises UndeclaredSetting naming the dotted key, so a rule whose
    declaration misses a key its command reads fails loudly instead of running on a default. Below a declared
    key the values are plain (the whole value was declared)."""

    def __init__(self, data: Mapping[str, Any], path: str = ""):
        super().__init__(data)
        self.path = path

    def __missing__(self, key: str) -> Any:
        raise UndeclaredSetting(
            f"config key '{self.path}{key}' is read by this command but not declared by its workflow rule: add "
            f"it to the rule's settings(...) (workflow/rules/*.smk), which is all the job receives")

    def get(self, key: str, default: Any = None) -> Any:
        return self[key]


def declared_config(settings: Mapping[str, Any], run_options: Mapping[str, Any] | None = None) -> DeclaredSettings:
    """The configuration of a workflow job: the {dotted key: value} `settings` its rule declares, nested
    (`labels.gamma` -> config["labels"]["gamma"]), with the how-to-run `run_options` (`RUN_OPTION_KEYS`) at the
    top. Nothing else is read: no config file, no scale preset (the workflow resolved them)."""
    root: dict = {}
    for key, value in {**dict(run_options or {}), **dict(settings)}.items():
        set_dotted(root, key, copy.deepcopy(value))

    def wrap(node: dict, path: str, declared: set) -> DeclaredSettings:
        out = {}
        for name, value in node.items():
            dotted = f"{path}{name}"
            out[name] = value if dotted in declared or not isinstance(value, dict) else wrap(value, f"{dotted}.", declared)
        return DeclaredSettings(out, path)

    return wrap(root, "", set(settings) | set(run_options or {}))


#: How a job runs, not what it computes: handed to every job (`--run-options`), never a rerun trigger.
RUN_OPTION_KEYS = ("data_mirror", "resources_dir", "device", "torch_threads", "download")
