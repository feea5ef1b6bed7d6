"""Load extensions.yaml strictly: YAML, then JSON Schema, then cross-references, then the model.

Every error names the file, the JSON pointer (and line) of the offending key, what was wrong and
what to do about it.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from monogres_oci.catalog.model import (
    Catalog,
    Distro,
    Extension,
    ExtensionVersion,
    OptionSet,
    Origin,
    PostgresRelease,
    Publisher,
    Source,
)
from monogres_oci.errors import CatalogError


@cache
def catalog_schema() -> dict[str, Any]:
    """The JSON Schema of extensions.yaml, shipped inside the package."""
    text = resources.files("monogres_oci.catalog").joinpath("schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def load_catalog(path: Path) -> Catalog:
    """Read, validate and convert a catalog file."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(shown, "", "file not found", "pass --catalog FILE or run from the "
                           "directory that holds extensions.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(shown, "", f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(shown, where, f"malformed YAML: {problem}",
                           "fix the YAML syntax (indentation, quotes, colons)") from None
    validate_against_schema(data, text, shown)
    catalog = _to_model(data, shown)
    _check_references(catalog, text, shown)
    return catalog


def validate_against_schema(data: Any, text: str, shown: str) -> None:
    """Raise CatalogError for the first (most relevant) schema violation."""
    validator = jsonschema.Draft202012Validator(
        catalog_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
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


def _to_model(data: dict[str, Any], shown: str) -> Catalog:
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
        option_sets=tuple(
            OptionSet(name=name, description=o["description"], buildtype=o["buildtype"],
                      meson_options=tuple(o["meson_options"]),
                      build_packages=tuple(o["build_packages"]))
            for name, o in sorted(data["option_sets"].items())
        ),
        postgres=tuple(
            PostgresRelease(version=p["version"], source=_source(p["source"]),
                            option_sets=tuple(p["option_sets"]), distros=tuple(p["distros"]))
            for p in data["postgres"]
        ),
        extensions=tuple(
            Extension(
                name=name, sql_name=e["sql_name"], description=e["description"],
                homepage=e["homepage"], license=e["license"],
                shared_preload_libraries=tuple(e.get("shared_preload_libraries", [])),
                build_system=e["build"]["system"],
                build_packages=tuple(e["build"].get("packages", [])),
                make_flags=tuple(e["build"].get("make_flags", [])),
                versions=tuple(
                    ExtensionVersion(version=v["version"],
                                     sql_version=v.get("sql_version", v["version"]),
                                     source=_source(v["source"]),
                                     postgres_majors=tuple(v["postgres"]))
                    for v in e["versions"]
                ),
            )
            for name, e in sorted(data["extensions"].items())
        ),
    )


def _check_references(catalog: Catalog, text: str, shown: str) -> None:
    """Names used in one place must be defined in another; versions must be unique."""
    distros = {d.name for d in catalog.distros}
    option_sets = {o.name for o in catalog.option_sets}
    seen: set[str] = set()
    for i, pg in enumerate(catalog.postgres):
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
    majors = {pg.major for pg in catalog.postgres}
    for ext in catalog.extensions:
        versions: set[str] = set()
        for i, v in enumerate(ext.versions):
            if v.version in versions:
                raise CatalogError(shown, _with_line(f"/extensions/{ext.name}/versions/{i}/version", text),
                                   f"version {v.version} of {ext.name} is listed twice", "keep one entry")
            versions.add(v.version)
            for j, major in enumerate(v.postgres_majors):
                if major not in majors:
                    raise CatalogError(
                        shown, _with_line(f"/extensions/{ext.name}/versions/{i}/postgres/{j}", text),
                        f"PostgreSQL {major} is not in the catalog",
                        f"add a {major}.x release under postgres, or remove it here")
