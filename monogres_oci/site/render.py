"""The catalog site as files: one page for the whole catalog (searched and filtered in the
browser), one page per extension, and the stylesheet and script they share.

Static and self-contained: no external asset, no absolute link, so it works from a directory
opened as file:// as well as from any web server. Deterministic: the same layout and options
make the same bytes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from monogres_oci.consume.cnpg import ExtensionRef, extension_stanza, image_catalog, with_required
from monogres_oci.site.collect import Artifact, PlatformImage, by_extension
from monogres_oci.site.static import SCRIPT, STYLE

PLACEHOLDER_REGISTRY = "REGISTRY/NAMESPACE"


@dataclass(frozen=True)
class SiteOptions:
    """Where the images are (or will be) published, for the snippets; the key that signs them."""

    registry: str = ""  # HOST/NAMESPACE; empty: a placeholder the reader replaces
    public_key: str = "monogres.pub"
    title: str = "monogres-oci catalog"
    plain_http: bool = False  # the registry speaks plain HTTP: the snippets' tools are told so


def render(artifacts: Sequence[Artifact], options: SiteOptions) -> dict[str, bytes]:
    """Every file of the site, by its path relative to the site's root."""
    files = {"static/site.css": STYLE.encode(), "static/site.js": SCRIPT.encode()}
    extensions = list(by_extension(list(artifacts)))
    files["index.html"] = _index(extensions, artifacts, options).encode()
    lookup = _Lookup.of(artifacts, options)
    for name, group in extensions:
        files[f"extensions/{_slug(name)}.html"] = _extension_page(name, group, lookup,
                                                                   options).encode()
    return files


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: str, root: str) -> str:
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n"
        f"<link rel=\"stylesheet\" href=\"{root}static/site.css\">\n</head>\n<body>\n"
        f"{body}\n<script src=\"{root}static/site.js\"></script>\n</body>\n</html>\n")


def _registry(options: SiteOptions) -> str:
    return options.registry.rstrip("/") or PLACEHOLDER_REGISTRY


def _ref(artifact: Artifact, options: SiteOptions, pinned: bool = True) -> str:
    ref = f"{_registry(options)}/{artifact.repository}:{artifact.rolling_tag}"
    return f"{ref}@{artifact.digest}" if pinned else ref


def _facets(a: Artifact) -> dict[str, str]:
    """What the catalog page filters on, as the row's data attributes."""
    contract = a.contract
    return {
        "name": a.name,
        "major": a.label("org.monogres.postgres.major"),
        "distro": a.label("org.monogres.distro"),
        "arch": " ".join(p.arch for p in a.platforms),
        "license": a.label("org.opencontainers.image.licenses"),
        "preload": "yes" if contract and contract.shared_preload_libraries else "no",
        "text": " ".join([a.name, a.label("org.opencontainers.image.description"),
                          *(contract.sql_names if contract else ())]).lower(),
    }


def _verdict(p: PlatformImage) -> str:
    t = p.tests
    if t is None:
        return "not gated"
    if t.total:
        return f"{t.verdict} {t.passed}/{t.total}"
    return f"{t.verdict}" + (f" (suite not run: {t.skipped})" if t.skipped else "")


def _select(facet: str, label: str, values: Sequence[str]) -> str:
    options = "".join(f"<option value=\"{_e(v)}\">{_e(v)}</option>" for v in values)
    return (f"<label>{_e(label)} <select data-facet=\"{facet}\">"
            f"<option value=\"\">any</option>{options}</select></label>")


def _index(extensions: list[tuple[str, list[Artifact]]], artifacts: Sequence[Artifact],
           options: SiteOptions) -> str:
    rows = []
    facet_values: dict[str, set[str]] = {"major": set(), "distro": set(), "arch": set(),
                                         "license": set(), "preload": set()}
    for name, group in extensions:
        for a in group:
            facets = _facets(a)
            for key in facet_values:
                facet_values[key].update(facets[key].split(" ") if key == "arch"
                                         else [facets[key]])
            attrs = " ".join(f"data-{k}=\"{_e(v)}\"" for k, v in facets.items())
            tests = "; ".join(f"{p.arch}: {_verdict(p)}" for p in a.platforms)
            rows.append(
                f"<tr class=\"artifact\" {attrs}>"
                f"<td><a href=\"extensions/{_slug(name)}.html\">{_e(name)}</a></td>"
                f"<td>{_e(a.label('org.opencontainers.image.version'))}</td>"
                f"<td>{_e(a.label('org.monogres.postgres.version'))}</td>"
                f"<td>{_e(facets['distro'])}</td><td>{_e(facets['arch'])}</td>"
                f"<td>{_e(facets['license'])}</td><td>{_e(facets['preload'])}</td>"
                f"<td>{_e(tests)}</td>"
                f"<td><code>{_e(a.repository)}:{_e(a.rolling_tag)}</code></td></tr>")
    postgres = [a for a in artifacts if a.kind in ("postgres", "postgres-image")]
    pg_rows = "".join(
        f"<tr><td>{_e(a.repository)}</td><td>{_e(a.label('org.monogres.postgres.version'))}</td>"
        f"<td>{_e(a.label('org.monogres.postgres.option_set'))}</td>"
        f"<td>{_e(a.label('org.monogres.distro'))}</td>"
        f"<td>{_e(' '.join(p.arch for p in a.platforms))}</td>"
        f"<td><code>{_e(_ref(a, options))}</code></td></tr>" for a in postgres)
    major_values = sorted(facet_values["major"], key=lambda v: int(v) if v.isdigit() else 0)
    filters = "".join([
        _select("major", "Postgres", major_values),
        _select("distro", "distro", sorted(facet_values["distro"])),
        _select("arch", "architecture", sorted(facet_values["arch"])),
        _select("license", "licence", sorted(facet_values["license"])),
        _select("preload", "preload", sorted(facet_values["preload"])),
    ])
    body = (
        f"<header><h1>{_e(options.title)}</h1>"
        f"<p>{len(extensions)} extensions in {len(rows)} images, and "
        f"{len(postgres)} Postgres images. Every extension image was proven by its own "
        "upstream suite against the Postgres image it names before it was published.</p>"
        "</header>\n<main>\n<section class=\"filters\">"
        "<label>search <input id=\"search\" type=\"search\" placeholder=\"name, description, "
        "SQL name\" autofocus></label>"
        f"{filters}<p id=\"count\" aria-live=\"polite\"></p></section>\n"
        "<table id=\"catalog\"><thead><tr><th>extension</th><th>version</th><th>Postgres</th>"
        "<th>distro</th><th>arch</th><th>licence</th><th>preload</th><th>upstream tests</th>"
        "<th>image</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n"
        "<h2>Postgres</h2><table><thead><tr><th>repository</th><th>version</th>"
        "<th>option set</th><th>distro</th><th>arch</th><th>reference</th></tr></thead>"
        f"<tbody>{pg_rows}</tbody></table>\n</main>")
    return _page(options.title, body, "")


@dataclass(frozen=True)
class _Lookup:
    """What the extension pages look up among all the artifacts, indexed once (not per page)."""

    # (Postgres version, distro) -> extension name -> its reference and contract
    extensions: Mapping[tuple[str, str], Mapping[str, ExtensionRef]]
    runnable: Mapping[str, Artifact]  # "repository:tag" -> the runnable Postgres image

    @classmethod
    def of(cls, artifacts: Sequence[Artifact], options: SiteOptions) -> _Lookup:
        extensions: dict[tuple[str, str], dict[str, ExtensionRef]] = {}
        runnable: dict[str, Artifact] = {}
        for x in artifacts:
            if x.kind == "extension" and x.contract is not None:
                extensions.setdefault(_build_of(x), {})[x.name] = ExtensionRef(_ref(x, options),
                                                                               x.contract)
            elif x.kind == "postgres-image":
                for tag in x.tags:
                    runnable.setdefault(f"{x.repository}:{tag}", x)
        return cls(extensions, runnable)


def _build_of(a: Artifact) -> tuple[str, str]:
    return a.label("org.monogres.postgres.version"), a.label("org.monogres.distro")


def _snippets(a: Artifact, lookup: _Lookup, options: SiteOptions) -> str:
    contract = a.contract
    assert contract is not None
    own = ExtensionRef(_ref(a, options), contract)
    try:
        mounted = with_required([own], list(lookup.extensions.get(_build_of(a), {}).values()))
    except KeyError:
        mounted = [own]
    stanza = yaml.safe_dump({"extensions": [extension_stanza(e) for e in mounted]},
                            sort_keys=False)
    runnable = lookup.runnable.get(a.label("io.cloudnativepg.image.base.name"))
    postgres_ref = (_ref(runnable, options) if runnable
                    else f"{_registry(options)}/{a.label('io.cloudnativepg.image.base.name')}")
    catalog = yaml.safe_dump(image_catalog(f"monogres-{a.label('org.monogres.distro')}",
                                           int(a.label("org.monogres.postgres.major") or 0),
                                           postgres_ref, mounted), sort_keys=False)
    preload = ""
    if contract.shared_preload_libraries:
        preload = ("<p>Also set <code>shared_preload_libraries: ["
                   f"{_e(', '.join(contract.shared_preload_libraries))}]</code> under "
                   "<code>spec.postgresql</code>.</p>")
    tag_ref = _ref(a, options, pinned=False)
    arch = a.platforms[0].arch
    oras_http = " --plain-http" if options.plain_http else ""
    cosign_http = " --allow-insecure-registry" if options.plain_http else ""
    return (
        "<h3>CloudNativePG: <code>Cluster.spec.postgresql</code></h3>"
        f"<pre class=\"snippet\" data-snippet=\"cnpg-extensions\">{_e(stanza)}</pre>{preload}"
        "<h3>CloudNativePG: ImageCatalog</h3>"
        f"<pre class=\"snippet\" data-snippet=\"cnpg-imagecatalog\">{_e(catalog)}</pre>"
        "<h3>ORAS</h3>"
        f"<pre class=\"snippet\" data-snippet=\"oras\">oras pull{oras_http} --platform "
        f"linux/{_e(arch)} {_e(tag_ref)} -o {_e(contract.name)}</pre>"
        "<h3>Bare metal</h3>"
        f"<pre class=\"snippet\" data-snippet=\"install\">monogres-oci install {_e(tag_ref)} "
        f"--dest /extensions --key {_e(options.public_key)}</pre>"
        "<h3>Signature</h3>"
        f"<pre class=\"snippet\" data-snippet=\"cosign\">cosign verify --key "
        f"{_e(options.public_key)} --insecure-ignore-tlog{cosign_http} {_e(tag_ref)}</pre>")


def _platform_section(p: PlatformImage) -> str:
    bundled = "".join(f"<li>{_e(b.name)} {_e(b.version)} <span class=\"licence\">"
                      f"{_e(b.license)}</span></li>" for b in p.bundled) or "<li>none</li>"
    files = "".join(f"<li><code>{_e(f)}</code></li>" for f in p.system_files)
    tests = _verdict(p)
    created = ", ".join(p.tests.created) if p.tests else ""
    return (
        f"<section class=\"platform\" data-arch=\"{_e(p.arch)}\"><h4>{_e(p.arch)}</h4>"
        f"<p>manifest <code>{_e(p.digest)}</code>{' (signed)' if p.signed else ''}</p>"
        f"<p class=\"tests\">upstream tests: {_e(tests)}"
        + (f"; created: {_e(created)}" if created else "") + "</p>"
        f"<p>SBOM: {p.sbom_packages} packages ({p.toolchain_packages} in the build "
        f"container); provenance: builder <code>{_e(p.builder or 'none')}</code>, "
        f"{p.dependencies} resolved dependencies</p>"
        f"<details><summary>bundled Debian packages ({len(p.bundled)})</summary>"
        f"<ul class=\"bundled\">{bundled}</ul>"
        + (f"<ul class=\"system\">{files}</ul>" if files else "") + "</details></section>")


def _extension_page(name: str, group: list[Artifact], lookup: _Lookup,
                    options: SiteOptions) -> str:
    first = group[0]
    sections = []
    for a in group:
        tags = " ".join(f"<code>{_e(t)}</code>" for t in a.tags)
        sections.append(
            f"<article class=\"version\" id=\"{_e(a.rolling_tag)}\">"
            f"<h2>{_e(name)} {_e(a.label('org.opencontainers.image.version'))} for "
            f"PostgreSQL {_e(a.label('org.monogres.postgres.version'))} "
            f"({_e(a.label('org.monogres.distro'))})</h2>"
            f"<p>tags: {tags}</p><p>index <code>{_e(a.digest)}</code></p>"
            f"<p>licence: <span class=\"licence\">"
            f"{_e(a.label('org.opencontainers.image.licenses'))}</span></p>"
            + "".join(_platform_section(p) for p in a.platforms)
            + _snippets(a, lookup, options) + "</article>")
    contract = first.contract
    facts = []
    if contract:
        facts.append(f"SQL names: {_e(', '.join(contract.sql_names) or '-')}")
        if contract.shared_preload_libraries:
            facts.append("needs shared_preload_libraries: "
                         f"{_e(', '.join(contract.shared_preload_libraries))}")
        if contract.requires:
            facts.append(f"requires: {_e(', '.join(contract.requires))}")
    homepage = first.label("org.opencontainers.image.url")
    body = (
        f"<header><p><a href=\"../index.html\">&larr; the catalog</a></p><h1>{_e(name)}</h1>"
        f"<p>{_e(first.label('org.opencontainers.image.description'))}</p>"
        f"<p><a href=\"{_e(homepage)}\" rel=\"external\">{_e(homepage)}</a></p>"
        f"<p>{'<br>'.join(facts)}</p></header>\n<main>\n" + "\n".join(sections) + "\n</main>")
    return _page(f"{name} - {options.title}", body, "../")


def site_json(artifacts: Sequence[Artifact], files: dict[str, bytes]) -> str:
    """What `site --json` prints: the pages written and what they show."""
    return json.dumps({"files": sorted(files),
                       "extensions": sorted({a.name for a in artifacts
                                             if a.kind == "extension"}),
                       "images": len(artifacts)}, indent=2)
