"""Load extensions.yaml strictly: YAML, then JSON Schema, then cross-references, then the model.

Every error names the file, the JSON pointer (and line) of the offending key, what was wrong and
what to do about it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml

from monogres_oci.catalog.background import validating_beside
from monogres_oci.catalog.model import (
    DEFAULT_RESULT_PATTERN,
    GATE_MANAGED_SETTINGS,
    BuildCycle,
    BuildRecipe,
    Catalog,
    Conditional,
    DataDir,
    Disabled,
    Distro,
    Extension,
    ExtensionPatch,
    ExtensionVersion,
    KnownFailure,
    OptionSet,
    Origin,
    Patch,
    PostgresRelease,
    Publisher,
    Runtime,
    Source,
    UpstreamSuite,
    build_order,
)
from monogres_oci.catalog.ranges import ANY, VersionRange, majors_range, parse_range
from monogres_oci.catalog.validated import recall, remember
from monogres_oci.errors import CatalogError
from monogres_oci.heap import collector_paused

# libyaml's safe loader when PyYAML has it (about 15 times faster on a large catalog).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
T = TypeVar("T")


@cache
def _schema_text() -> str:
    return resources.files("monogres_oci.catalog").joinpath("schema.json").read_text()


@cache
def catalog_schema() -> dict[str, Any]:
    """The JSON Schema of extensions.yaml, shipped inside the package."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


def load_catalog(path: Path, *, validated_dir: Path | None = None) -> Catalog:
    """Read, validate and convert a catalog file. With ``validated_dir``, data validated from
    the very same text before is read from there instead of parsed and validated again."""
    shown, text = _read(path)
    with collector_paused():  # a large catalog is a million YAML nodes, no cycle among them
        data = recall(validated_dir, _schema_text(), text) if validated_dir else None
        if data is None:
            data = _parse(text, shown)
            validate_against_schema(data, text, shown)
            if validated_dir:
                remember(validated_dir, _schema_text(), text, data)
        return _catalog_of(data, text, shown)


def load_catalog_then(path: Path, then: Callable[[Catalog], T], *,
                      validated_dir: Path | None = None) -> tuple[Catalog, T]:
    """``load_catalog(path)`` and ``then(catalog)``, with the schema validation of a catalog
    not validated before run in a child process beside the conversion and ``then``. Returns
    when both succeeded; a catalog the schema refuses raises the validation's CatalogError,
    whatever the work beside it did (on data the schema refuses it may fail in any way)."""
    shown, text = _read(path)
    with collector_paused():
        data = recall(validated_dir, _schema_text(), text) if validated_dir else None
        if data is not None:
            catalog = _catalog_of(data, text, shown)
            return catalog, then(catalog)
        data = _parse(text, shown)
        _validator()  # built once here, not again in the child and in a later call
        with validating_beside(validate_against_schema, data, text, shown) as verdict:
            try:
                catalog = _catalog_of(data, text, shown)
                result = then(catalog)
            except Exception:
                verdict.wait()
                raise
            verdict.wait()
    if validated_dir:
        remember(validated_dir, _schema_text(), text, data)
    return catalog, result


def _read(path: Path) -> tuple[str, str]:
    """The name the messages show, and the text of the catalog file."""
    shown = str(path)
    try:
        return shown, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(shown, "", "file not found", "pass --catalog FILE or run from the "
                           "directory that holds extensions.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(shown, "", f"cannot read: {exc}") from None


def _catalog_of(data: Any, text: str, shown: str) -> Catalog:
    catalog = _to_model(data, text, shown)
    _check_references(catalog, text, shown)
    return catalog


def _parse(text: str, shown: str) -> Any:
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(shown, where, f"malformed YAML: {problem}",
                           "fix the YAML syntax (indentation, quotes, colons)") from None
    if data is None:
        raise CatalogError(shown, "", "the file holds no YAML document",
                           "a catalog has the keys publisher, distros, option_sets, postgres and "
                           "extensions (see the extensions.yaml shipped with monogres-oci)")
    return data


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/NAME", ...}`` replaced by that definition (its
    own keys, a description, kept): the schema has no recursive definition, and a validator that
    looks a reference up at every instance spends half its time doing so."""
    if isinstance(node, list):
        return [_inline_refs(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline_refs(defs[node["$ref"].removeprefix("#/$defs/")], defs)
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return {k: v if k == "$defs" else _inline_refs(v, defs) for k, v in node.items()}


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = catalog_schema()
    return jsonschema.Draft202012Validator(
        _inline_refs(schema, schema.get("$defs", {})),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def validate_against_schema(data: Any, text: str, shown: str) -> None:
    """Raise CatalogError for the first (most relevant) schema violation."""
    validator = _validator()
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    assert error is not None
    pointer = _pointer(list(error.absolute_path))
    problem, hint = _explain(error)
    raise CatalogError(shown, _with_line(pointer, text), problem, hint)


def _explain(error: jsonschema.ValidationError) -> tuple[str, str]:
    """Turn a jsonschema error into a sentence and a hint a person can act on."""
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        return (f"unknown key {', '.join(repr(k) for k in extra)}",
                f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it")
    if kind == "required":
        return error.message.replace("is a required property", "is missing"), \
            "add the key (see monogres_oci/catalog/schema.json)"
    if kind == "pattern":
        what = schema.get("description", "")
        if "pattern" in schema and "{64}" in str(schema["pattern"]):
            return (f"{error.instance!r} is not a sha256",
                    "use the 64 lower-case hex digits printed by sha256sum")
        return (f"{error.instance!r} does not have the expected form",
                f"{what + ' ' if what else ''}must match {schema.get('pattern')}")
    if kind == "type":
        return (f"{error.instance!r} is a {type(error.instance).__name__}, "
                f"expected {schema.get('type')}",
                "quote versions such as \"18.6\" so YAML keeps them as strings"
                if schema.get("type") == "string" else "")
    if kind in ("oneOf", "anyOf"):
        return ("matches none of the allowed forms",
                "an origin is either {url: ...} or {debian: {package: NAME=VERSION, file: ...}}")
    if kind == "enum":
        return (f"{error.instance!r} is not one of {schema.get('enum')}", "")
    if kind == "const":
        return (f"{error.instance!r} is not supported, expected {schema.get('const')!r}", "")
    return (error.message, "")


def _pointer(parts: list[str | int]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _with_line(pointer: str, text: str) -> str:
    """Append the YAML line of the node a JSON pointer names, when it can be found."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return pointer
    for raw in [p for p in pointer.split("/")[1:] if p]:
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
        else:
            node = None
        if node is None:
            return pointer
    if node is None:  # an empty document has no node at all
        return pointer
    return f"{pointer} (line {node.start_mark.line + 1})"


def _source(raw: dict[str, Any]) -> Source:
    origins = []
    for o in raw["origins"]:
        if "url" in o:
            origins.append(Origin(url=o["url"]))
        else:
            origins.append(Origin(debian_package=o["debian"]["package"],
                                  debian_file=o["debian"]["file"]))
    return Source(file=raw["file"], sha256=raw["sha256"], origins=tuple(origins))


def _versions(raw: str | list[int]) -> VersionRange:
    # The schema has checked the form already.
    return parse_range(raw) if isinstance(raw, str) else majors_range(tuple(raw))


def _known_failures(raw: dict[str, Any]) -> tuple[KnownFailure, ...]:
    """A reason alone fails everywhere; an object says where (the schema checked the forms)."""
    failures = []
    for test, value in sorted(raw.items()):
        if isinstance(value, str):
            failures.append(KnownFailure(test, value))
        else:
            where = parse_range(value["postgres"]) if "postgres" in value else ANY
            failures.append(KnownFailure(test, value["reason"], where,
                                         bool(value.get("emulated", False))))
    return tuple(failures)


def _disabled(raw: str | list[dict[str, Any]]) -> tuple[Disabled, ...]:
    """A string disables every target; each rule of a list those its scope matches."""
    if isinstance(raw, str):
        return (Disabled(reason=raw),)
    return tuple(Disabled(reason=r["reason"],
                          postgres=_versions(r["postgres"]) if "postgres" in r else ANY,
                          distro=r.get("distro", ""), arch=r.get("arch", ""))
                 for r in raw)


def _conditionals(items: list[Any], key: str) -> tuple[Conditional, ...]:
    """Plain strings apply to every release; {KEY: value, postgres: range} to those admitted."""
    return tuple(
        Conditional(i, ANY) if isinstance(i, str) else Conditional(i[key], _versions(i["postgres"]))
        for i in items
    )


def _option_sets(raw: dict[str, Any], text: str, shown: str) -> tuple[OptionSet, ...]:
    """Resolve ``extends`` chains: the base's options and packages first, then the set's own."""
    resolved: dict[str, OptionSet] = {}

    def resolve(name: str, chain: tuple[str, ...]) -> OptionSet:
        if name in resolved:
            return resolved[name]
        o = raw[name]
        options = _conditionals(o.get("meson_options", []), "option")
        packages = _conditionals(o.get("build_packages", []), "package")
        parent = o.get("extends", "")
        if parent:
            if parent not in raw:
                raise CatalogError(shown, _with_line(f"/option_sets/{name}/extends", text),
                                   f"option set {name!r} extends unknown {parent!r}",
                                   f"known option sets: {', '.join(sorted(raw))}")
            if parent in chain:
                raise CatalogError(shown, _with_line(f"/option_sets/{name}/extends", text),
                                   f"option sets extend each other in a cycle: "
                                   f"{' -> '.join((*chain, name, parent))}",
                                   "one of them must not extend the other")
            base = resolve(parent, (*chain, name))
            options = base.meson_options + options
            packages = base.build_packages + tuple(p for p in packages
                                                   if p not in base.build_packages)
        resolved[name] = OptionSet(name=name, description=o["description"],
                                   buildtype=o["buildtype"], meson_options=options,
                                   build_packages=packages, extends=parent,
                                   emulate=o.get("emulate", base.emulate if parent else ""))
        return resolved[name]

    return tuple(resolve(name, ()) for name in sorted(raw))


def _extension(name: str, e: dict[str, Any]) -> Extension:
    b, r, s = e["build"], e.get("runtime", {}), e.get("test", {})
    sql = e.get("sql_name", [])
    return Extension(
        name=name, sql_names=tuple(sql) if isinstance(sql, list) else (sql,),
        description=e["description"], homepage=e["homepage"], license=e["license"],
        disabled=_disabled(e.get("disabled", [])),
        build=BuildRecipe(
            system=b["system"], packages=tuple(b.get("packages", [])), subdir=b.get("subdir", "."),
            configure_flags=tuple(b.get("configure_flags", [])),
            cmake_options=tuple(b.get("cmake_options", [])),
            make_flags=tuple(b.get("make_flags", [])), cflags=tuple(b.get("cflags", [])),
            patches=tuple(ExtensionPatch(p["file"], p["sha256"], p["reason"])
                          for p in b.get("patches", [])),
            data=tuple(DataDir(d["from"], d["to"]) for d in b.get("data", [])),
            keep_paths=tuple((k["file"], k["reason"]) for k in b.get("keep_paths", [])),
            dlopen=tuple((d["name"], d["reason"]) for d in b.get("dlopen", [])),
            requires=tuple(b.get("requires", [])),
            emulate=b.get("emulate", "")),
        runtime=Runtime(
            shared_preload_libraries=tuple(r.get("shared_preload_libraries", [])),
            requires=tuple(r.get("requires", [])),
            env=tuple(sorted(r.get("env", {}).items())),
            modules=tuple(r.get("modules", []))),
        test=UpstreamSuite(
            command=tuple(s.get("command", [])), regress=tuple(s.get("regress", [])),
            inputdir=s.get("inputdir", "."), options=tuple(s.get("options", [])),
            result_pattern=s.get("result_pattern", DEFAULT_RESULT_PATTERN),
            passed=s.get("passed", "ok"),
            known_failures=_known_failures(s.get("known_failures", {})),
            server_dirs=tuple(s.get("server_dirs", [])), setup=tuple(s.get("setup", [])),
            server_settings=tuple(sorted(s.get("server_settings", {}).items())),
            shared_dirs=tuple(s.get("shared_dirs", [])),
            tree_on_server=tuple(s.get("tree_on_server", [])),
            skip=s.get("skip", ""), alone=s.get("alone", "")),
        versions=tuple(
            ExtensionVersion(version=v["version"], sql_version=v.get("sql_version", v["version"]),
                             source=_source(v["source"]), postgres=_versions(v["postgres"]),
                             source_date_epoch=v.get("source_date_epoch"),
                             disabled=_disabled(v.get("disabled", [])))
            for v in e["versions"]
        ),
    )


def _to_model(data: dict[str, Any], text: str, shown: str) -> Catalog:
    pub = data["publisher"]
    return Catalog(
        path=shown,
        publisher=Publisher(vendor=pub["vendor"], url=pub["url"], source=pub["source"],
                            documentation=pub["documentation"], revision=pub.get("revision", "")),
        distros=tuple(
            Distro(name=name, suite=d["suite"], base_image=d["base_image"],
                   architectures=tuple(sorted(d["architectures"])),
                   toolchain_packages=tuple(d["toolchain_packages"]))
            for name, d in sorted(data["distros"].items())
        ),
        option_sets=_option_sets(data["option_sets"], text, shown),
        postgres=tuple(
            PostgresRelease(version=p["version"], source=_source(p["source"]),
                            option_sets=tuple(p["option_sets"]), distros=tuple(p["distros"]),
                            source_date_epoch=p.get("source_date_epoch"))
            for p in data["postgres"]
        ),
        extensions=tuple(_extension(name, e) for name, e in sorted(data["extensions"].items())),
        patches=tuple(
            Patch(file=p["file"], sha256=p["sha256"], postgres=_versions(p["postgres"]),
                  reason=p["reason"])
            for p in data.get("patches", [])
        ),
    )


def _check_references(catalog: Catalog, text: str, shown: str) -> None:
    """Names used in one place must be defined in another; versions must be unique."""
    distros = {d.name for d in catalog.distros}
    option_sets = {o.name for o in catalog.option_sets}
    seen: set[str] = set()
    sets = {o.name: o for o in catalog.option_sets}
    for i, pg in enumerate(catalog.postgres):
        for name in pg.option_sets:
            # Written into every artifact's annotations, whose values stay under 256 characters.
            if name in sets and len(" ".join(sets[name].meson_options_for(pg.version))) > 255:
                raise CatalogError(shown, _with_line(f"/option_sets/{name}", text),
                                   f"the meson options of {name!r} for PostgreSQL {pg.version} "
                                   "are longer than an annotation may be (255 characters)",
                                   "drop options that repeat a default or that --auto-features "
                                   "already implies")
        if pg.version in seen:
            raise CatalogError(shown, _with_line(f"/postgres/{i}/version", text),
                               f"PostgreSQL {pg.version} is listed twice", "keep one entry")
        seen.add(pg.version)
        for key, what, used, known in (("option_sets", "option set", pg.option_sets, option_sets),
                                       ("distros", "distro", pg.distros, distros)):
            for j, name in enumerate(used):
                if name not in known:
                    raise CatalogError(shown, _with_line(f"/postgres/{i}/{key}/{j}", text),
                                       f"unknown {what} {name!r}",
                                       f"define it under {key} (known: {', '.join(sorted(known))})")
    for ext in catalog.extensions:
        versions: set[str] = set()
        for i, v in enumerate(ext.versions):
            if v.version in versions:
                raise CatalogError(shown, _with_line(f"/extensions/{ext.name}/versions/{i}/version", text),
                                   f"version {v.version} of {ext.name} is listed twice", "keep one entry")
            versions.add(v.version)
            if not any(v.postgres.admits(pg.version) for pg in catalog.postgres):
                raise CatalogError(
                    shown, _with_line(f"/extensions/{ext.name}/versions/{i}/postgres", text),
                    f"{ext.name} {v.version} builds against PostgreSQL {v.postgres}, and no release "
                    f"in the catalog is in that range (releases: "
                    f"{', '.join(pg.version for pg in catalog.postgres)})",
                    "widen the range, or add a release it admits under postgres")
    names = {e.name for e in catalog.extensions}
    for ext in catalog.extensions:
        _check_extension(ext, names, text, shown, distros)
    _check_build_cycles(catalog, text, shown)
    for i, patch in enumerate(catalog.patches):
        _check_patch(patch.file, patch.sha256, f"/patches/{i}", text, shown)


def _check_build_cycles(catalog: Catalog, text: str, shown: str) -> None:
    """No extension may need itself at build time through others: each is built before those
    that compile against it."""
    try:
        build_order(catalog.extensions)
    except BuildCycle as cycle:
        raise CatalogError(shown, _with_line(f"/extensions/{cycle.cycle[0]}/build/requires", text),
                           f"extensions are built against each other in a cycle: {cycle}",
                           "one of them must not list the other in build.requires") from None


def _check_extension(ext: Extension, names: set[str], text: str, shown: str,
                     distros: set[str]) -> None:
    """An extension's references: distros, required extensions, patches, the result pattern."""
    where = f"/extensions/{ext.name}"
    rules = [(f"{where}/disabled/{j}", r) for j, r in enumerate(ext.disabled)] + [
        (f"{where}/versions/{i}/disabled/{j}", r)
        for i, v in enumerate(ext.versions) for j, r in enumerate(v.disabled)]
    for pointer, rule in rules:
        if rule.distro and rule.distro not in distros:
            raise CatalogError(shown, _with_line(f"{pointer}/distro", text),
                               f"unknown distro {rule.distro!r}",
                               f"define it under distros (known: {', '.join(sorted(distros))})")
    if not ext.sql_names and not ext.runtime.modules:
        raise CatalogError(shown, _with_line(where, text), "no sql_name and no runtime.modules: "
                           "nothing for CREATE EXTENSION or LOAD",
                           "set sql_name (the name of its .control file) or, for a module "
                           "without a control file, list its libraries in runtime.modules")
    for part, listed in (("runtime", ext.runtime.requires), ("build", ext.build.requires)):
        for j, required in enumerate(listed):
            if required == ext.name or required not in names:
                raise CatalogError(shown, _with_line(f"{where}/{part}/requires/{j}", text),
                                   f"{ext.name} requires {required!r}, which is "
                                   + ("itself" if required == ext.name else "not in the catalog"),
                                   f"name another extension of the catalog (known: "
                                   f"{', '.join(sorted(names - {ext.name}))})")
    for j, patch in enumerate(ext.build.patches):
        _check_patch(patch.file, patch.sha256, f"{where}/build/patches/{j}", text, shown)
    suite = ext.test
    for name, _ in suite.server_settings:
        if name.lower() in GATE_MANAGED_SETTINGS:
            raise CatalogError(shown, _with_line(f"{where}/test/server_settings/{name}", text),
                               f"{name} is set by the gate itself",
                               "preload libraries go in runtime.shared_preload_libraries; the "
                               "paths, port and addresses follow from the mounted images")
    if suite.command and suite.regress:
        raise CatalogError(shown, _with_line(f"{where}/test", text),
                           "test has both command and regress", "keep one: a harness command, or "
                           "the pg_regress tests to run")
    try:
        groups = re.compile(suite.result_pattern).groupindex
    except re.error as exc:
        raise CatalogError(shown, _with_line(f"{where}/test/result_pattern", text),
                           f"not a regular expression: {exc}", "") from None
    if not {"name", "status"} <= set(groups):
        raise CatalogError(shown, _with_line(f"{where}/test/result_pattern", text),
                           "the pattern has no (?P<name>...) and (?P<status>...) groups",
                           "name the test and its status, e.g. "
                           r"'^(?P<status>ok|not ok)\s+\d+\s+-\s+(?P<name>\S+)'")


def _check_patch(file: str, sha256: str, pointer: str, text: str, shown: str) -> None:
    """A patch file exists beside the catalog and has the pinned sha256."""
    try:
        data = (Path(shown).parent / file).read_bytes()
    except OSError as exc:
        raise CatalogError(shown, _with_line(f"{pointer}/file", text),
                           f"cannot read patch {file}: {exc.strerror}",
                           "paths are relative to the catalog file") from None
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise CatalogError(shown, _with_line(f"{pointer}/sha256", text),
                           f"{file} does not match its sha256",
                           f"if the change is intended, set sha256 to {got}")
