"""Every kind of extension, built, proven by its own upstream suite, published and consumed.

One build (the ``kinds`` fixture) against the shared PostgreSQL 18.6 build: PostGIS (configure;
GEOS, PROJ, GDAL and their closure bundled), pgpointcloud (configure.ac only: autoreconf first;
pointcloud_postgis needs PostGIS), greet (a CMake fixture), pg_repack (a server
library and a client program), mysql_fdw (dlopen()s a client library nothing links),
postgresql-unit (its SQL copies a data file by absolute path), atop (built against greet: its
build reads greet's files in the Postgres tree, and it requires greet at run time), crown
(requires atop: a chain of two requirements the gate mounts whole),
sour (its suite fails) and badpath (its SQL names a file nothing ships). Everything real: BuildKit,
the registry, Postgres started from the published images, oras, cosign, the CRDs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from monogres_oci.attest.attach import SPDX_TYPE, attachments_by_subject
from monogres_oci.build.compile import ExtensionInvocation, compile_extension
from monogres_oci.oci.layout import Layout
from tests.e2e.conftest import CACHE, Built, Published, cli
from tests.unit.consume.test_cnpg import crd_schema

pytestmark = pytest.mark.e2e

VERSIONS = {"postgis": "3.6.4", "pgpointcloud": "1.2.5", "greet": "1.0", "pg_repack": "1.5.3",
            "unit": "7.10", "mysql_fdw": "2.9.3", "atop": "1.0", "crown": "1.0"}
POSTGIS_LIBS = ("libgeos_c.so.1", "libproj.so.25", "libgdal.so.32", "libjson-c.so.5",
                "libprotobuf-c.so.1")


def tag(name: str) -> str:
    return f"{name}:18.6-{VERSIONS[name]}-bookworm"


def targets(built: Built) -> dict[str, dict[str, Any]]:
    return {t["name"].split("-")[0]: t for t in built.report["targets"] if t["kind"] == "extension"}


def layer_members(layout: Layout, repo_tag: str) -> dict[str, tarfile.TarInfo]:
    index = layout.read_index(layout.resolve(repo_tag).digest)
    manifest = layout.read_manifest(index.manifests[0].digest)
    (layer,) = manifest.layers
    with tarfile.open(layout.blob_path(layer.digest)) as tar:
        return {m.name: m for m in tar}


def test_every_build_system_passes_its_own_upstream_suite(kinds: tuple[Built, Published]) -> None:
    built, _ = kinds
    by_name = targets(built)
    minimum = {"postgis": 300, "pgpointcloud": 3, "greet": 1, "pg_repack": 11, "unit": 19}
    for name, tests in minimum.items():
        target = by_name[name]
        assert target["ok"], target["error"][-3000:]
        gate = target["gate"]
        assert gate["verdict"] == "PASSED", gate
        assert all(c["ok"] for c in gate["create_extension"])
        assert gate["suite"]["passed"] == gate["suite"]["total"] >= tests, gate["suite"]
    assert [c["sql_name"] for c in by_name["postgis"]["gate"]["create_extension"]] == [
        "postgis", "postgis_raster", "postgis_topology", "postgis_tiger_geocoder"]
    # autoreconf wrote the configure script the release lacks, with the autotools the build record
    # names; pointcloud_postgis was created over the PostGIS image mounted beside it
    assert [c["sql_name"] for c in by_name["pgpointcloud"]["gate"]["create_extension"]] == [
        "pointcloud", "pointcloud_postgis"]
    layout = Layout.open(built.layout)
    index = layout.read_index(layout.resolve(tag("pgpointcloud")).digest)
    key = layout.read_manifest(index.manifests[0].digest).annotations["org.monogres.input.digest"]
    record = json.loads((CACHE / "builds" / key.removeprefix("sha256:") / "meta"
                         / "buildinfo.json").read_text())
    tools = " ".join(record["compilers"])
    assert "autoconf" in tools and "automake" in tools and "libtool" in tools, tools


def test_a_failing_suite_is_not_published_and_the_others_are(kinds: tuple[Built, Published]) -> None:
    built, published = kinds
    sour = targets(built)["sour"]
    assert not sour["ok"] and sour["gate"]["verdict"] == "FAILED"
    assert [t["name"] for t in sour["gate"]["suite"]["tests"] if not t["passed"]] == ["sour"]
    assert "not tagged, so not published" in sour["error"]
    # the suite's whole output is kept, and the server's whole log beside it (the result
    # holds only their tails)
    named = re.search(r"the suite's whole output: (\S+)\)", sour["error"])
    assert named, sour["error"]
    kept = Path(named.group(1))
    assert "database system is ready to accept connections" in (kept / "server.log").read_text()
    assert not any(r.startswith("sour:") for r in built.report["refs"])
    assert not any(r.startswith("sour:") for r in published.refs)
    for name in VERSIONS:
        assert tag(name) in published.refs


def test_a_path_nothing_ships_fails_the_build_naming_file_line_and_key(
        kinds: tuple[Built, Published]) -> None:
    badpath = targets(kinds[0])["badpath"]
    assert not badpath["ok"]
    assert "share/extension/badpath--1.0.sql:4" in badpath["error"]
    assert "/usr/lib/postgresql/18/share/extension/badpath_words.data" in badpath["error"]
    assert "extensions.badpath.build.data" in badpath["error"]
    assert not any(r.startswith("badpath:") for r in kinds[0].report["refs"])


def test_a_library_opened_with_dlopen_is_bundled_under_the_name_it_is_opened_by(
        kinds: tuple[Built, Published]) -> None:
    """mysql_fdw's _PG_init dlopen()s libmysqlclient.so, a -dev symlink that no DT_NEEDED names:
    the catalog's build.dlopen bundles it, so CREATE EXTENSION (which runs _PG_init) works."""
    built, _ = kinds
    target = targets(built)["mysql_fdw"]
    assert target["ok"], target["error"][-3000:]
    gate = target["gate"]
    assert gate["verdict"] == "PASSED" and gate["suite"]["skipped"], gate
    assert [c["ok"] for c in gate["create_extension"]] == [True], gate
    members = layer_members(Layout.open(built.layout), tag("mysql_fdw"))
    # the bytes of the library the symlink names, under the symlink's name, with its package's
    # licence (libmariadb3, the package of libmariadb.so.3, not the -dev package of the symlink)
    assert members["system/libmysqlclient.so"].isfile()
    assert members["system/libmysqlclient.so"].size > 100_000
    assert members["licenses/libmariadb3/copyright"].isfile()
    assert not any(name.startswith("licenses/libmariadb-dev") for name in members)


def test_an_extension_built_against_another_has_its_files_at_build_time_only(
        kinds: tuple[Built, Published]) -> None:
    """atop's build.requires names greet: greet is compiled first, its install tree is in the
    Postgres tree atop compiles against (atop's build reads greet.control, and fails without
    it), none of greet's files ship in atop's image, and atop's build record names the greet
    build it used (an input of its key)."""
    built, _ = kinds
    by_name = targets(built)
    target = by_name["atop"]
    assert target["ok"], target["error"][-3000:]
    gate = target["gate"]
    assert (gate["verdict"], gate["suite"]["passed"], gate["suite"]["total"]) == ("PASSED", 1, 1)
    layout = Layout.open(built.layout)
    members = layer_members(layout, tag("atop"))
    assert "share/extension/atop.control" in members and "share/extension/atop--1.0.sql" in members
    assert not [name for name in members if "greet" in name.rsplit("/", 1)[-1]], sorted(members)
    key = {}
    for name in ("atop", "greet"):
        index = layout.read_index(layout.resolve(tag(name)).digest)
        manifest = layout.read_manifest(index.manifests[0].digest)
        key[name] = manifest.annotations["org.monogres.input.digest"]
    record = json.loads((CACHE / "builds" / key["atop"].removeprefix("sha256:") / "meta"
                         / "buildinfo.json").read_text())
    assert record["built_against"] == [{"target": by_name["greet"]["name"],
                                        "input_digest": key["greet"]}]


def test_a_chain_of_requirements_is_mounted_whole_by_the_gate_and_the_manifests(
        kinds: tuple[Built, Published]) -> None:
    """crown requires atop, which requires greet: `CREATE EXTENSION crown CASCADE` creates all
    three, so crown's gate mounts both (not atop alone), and its suite, which calls greet's C
    function through atop's, passes; the CloudNativePG manifest for crown lists all three."""
    built, published = kinds
    by_name = targets(built)
    for name in ("atop", "crown"):
        target = by_name[name]
        assert target["ok"], target["error"][-3000:]
        gate = target["gate"]
        assert [c["ok"] for c in gate["create_extension"]] == [True], gate
        assert (gate["verdict"], gate["suite"]["passed"], gate["suite"]["total"]) == (
            "PASSED", 1, 1), gate
    assert tag("crown") in published.refs
    cluster, _ = _cnpg_docs(published, built, "crown")
    listed = [e["name"] for e in cluster["spec"]["postgresql"]["extensions"]]
    assert sorted(listed) == ["atop", "crown", "greet"], listed


def test_the_suite_runs_on_a_cluster_the_create_extension_check_left_as_it_found_it(
        kinds: tuple[Built, Published]) -> None:
    """roles' script makes (and grants) a role of the cluster only if it does not exist, as
    powa 5's does; its suite creates it again and expects the grant: the gate's own CREATE
    EXTENSION, in a database of its own, must not leave the role behind for the suite."""
    built, _ = kinds
    target = targets(built)["roles"]
    assert target["ok"], target["error"][-3000:]
    gate = target["gate"]
    assert [c["ok"] for c in gate["create_extension"]] == [True], gate
    assert (gate["verdict"], gate["suite"]["passed"], gate["suite"]["total"]) == ("PASSED", 1, 1)


def test_an_absolute_data_path_is_rewritten_to_the_mount_point(kinds: tuple[Built, Published]) -> None:
    built, _ = kinds
    layout = Layout.open(built.layout)
    index = layout.read_index(layout.resolve(tag("unit")).digest)
    manifest = layout.read_manifest(index.manifests[0].digest)
    assert manifest.annotations["org.monogres.extension.mount"] == "/extensions/unit"
    with tarfile.open(layout.blob_path(manifest.layers[0].digest)) as tar:
        sql = tar.extractfile("share/extension/unit--7.sql").read().decode()  # type: ignore[union-attr]
    assert "FROM '/extensions/unit/share/extension/unit_prefixes.data'" in sql
    assert "/usr/lib/postgresql/18" not in sql


def test_postgis_bundles_its_libraries_with_licences_and_sbom(kinds: tuple[Built, Published],
                                                             tmp_path: Path) -> None:
    built, _ = kinds
    layout = Layout.open(built.layout)
    members = layer_members(layout, tag("postgis"))
    tops = {name.split("/")[0] for name in members}
    assert tops == {"lib", "share", "bin", "system", "licenses"}
    for lib in POSTGIS_LIBS:
        assert members[f"system/{lib}"].isfile(), lib
    assert members["share/proj/proj.db"].isfile() and "share/gdal" in members
    index = layout.read_index(layout.resolve(tag("postgis")).digest)
    manifest = layout.read_manifest(index.manifests[0].digest)
    notes = manifest.annotations
    assert notes["org.monogres.extension.ld_library_path"] == "system"
    assert notes["org.monogres.extension.bin_path"] == "bin"
    assert json.loads(notes["org.monogres.extension.env"]) == {
        "GDAL_DATA": "${image_root}/share/gdal", "PROJ_DATA": "${image_root}/share/proj"}
    assert notes["org.opencontainers.image.licenses"].startswith("GPL-2.0-or-later AND ")

    (sbom_item,) = [a for a in attachments_by_subject(layout)[index.manifests[0].digest]
                    if a.descriptor.artifact_type == SPDX_TYPE]
    raw = layout.read_blob(sbom_item.payload.digest)
    (tmp_path / "sbom.json").write_bytes(raw)
    messages = validate_full_spdx_document(parse_file(str(tmp_path / "sbom.json")))
    assert messages == [], [m.validation_message for m in messages][:10]
    doc = json.loads(raw)
    contained = {r["relatedSpdxElement"] for r in doc["relationships"]
                 if r["spdxElementId"] == "SPDXRef-Image" and r["relationshipType"] == "CONTAINS"}
    bundled = [p for p in doc["packages"] if p["SPDXID"] in contained]
    names = {p["name"] for p in bundled}
    assert {"libgeos-c1v5", "libproj25", "libgdal32", "libjson-c5", "libprotobuf-c1",
            "proj-data", "gdal-data"} <= names
    for package in bundled:
        purl = package["externalRefs"][0]["referenceLocator"]
        assert purl.startswith(f"pkg:deb/debian/{package['name']}@") and "distro=bookworm" in purl
        assert len(package["checksums"][0]["checksumValue"]) == 64
        assert package["licenseDeclared"] not in ("", "NOASSERTION")
        assert members[f"licenses/{package['name']}/copyright"].isfile()


POSTGIS_SQL = (
    "CREATE EXTENSION postgis_raster CASCADE; "
    "SET postgis.gdal_enabled_drivers = 'GTiff'; "
    # PROJ's database: a transformation between two EPSG codes
    "SELECT round(ST_X(ST_Transform(ST_SetSRID(ST_Point(2.35, 48.85), 4326), 3857))::numeric); "
    # GDAL: a raster written as a GeoTIFF
    "SELECT encode(substring(ST_AsGDALRaster(ST_AsRaster(ST_Buffer(ST_Point(0, 0), 10), 10, 10),"
    " 'GTiff') FROM 1 FOR 4), 'hex')")
POSTGIS_ANSWER = ["261601", "49492a00"]  # 2.35 deg E in metres; "II*\0", a little-endian TIFF


def _cnpg_docs(published: Published, built: Built, *extensions: str) -> list[dict[str, Any]]:
    args = ["cnpg", "--catalog", str(built.catalog), "--registry",
            f"{published.registry.host}/{published.namespace}", "--postgres", "18.6"]
    for ext in extensions:
        args += ["--extension", ext]
    return list(yaml.safe_load_all(cli(*args).stdout))


def test_cnpg_manifests_carry_the_runtime_contract(kinds: tuple[Built, Published]) -> None:
    built, published = kinds
    cluster, catalog = _cnpg_docs(published, built, "postgis", "pg_repack")
    jsonschema.validate(cluster, crd_schema("postgresql.cnpg.io_clusters.yaml"))
    jsonschema.validate(catalog, crd_schema("postgresql.cnpg.io_imagecatalogs.yaml"))
    postgis, repack = cluster["spec"]["postgresql"]["extensions"]
    assert postgis["name"] == "postgis" and postgis["ld_library_path"] == ["system"]
    assert {"name": "PROJ_DATA", "value": "${image_root}/share/proj"} in postgis["env"]
    assert repack["bin_path"] == ["bin"] and "ld_library_path" not in repack
    assert postgis["image"]["reference"] == published.refs[tag("postgis")]


def test_postgis_in_the_runnable_image_mounted_the_cloudnativepg_way(
        kinds: tuple[Built, Published], world_dir: Path) -> None:
    built, published = kinds
    cluster, _ = _cnpg_docs(published, built, "postgis")
    (stanza,) = cluster["spec"]["postgresql"]["extensions"]
    cli("install", published.tag_ref(tag("postgis")), "--dest", str(world_dir),
        "--key", str(published.keys.public))
    mount = "/extensions/postgis"
    # What the operator does with the stanza: LD_LIBRARY_PATH, the env with ${image_root}
    env = [f"LD_LIBRARY_PATH={':'.join(f'{mount}/{p}' for p in stanza['ld_library_path'])}"]
    env += [f"{e['name']}={e['value'].replace('${image_root}', mount)}" for e in stanza["env"]]
    image = cluster["spec"]["imageName"]
    subprocess.run(["docker", "pull", image], check=True, capture_output=True)
    name = f"monogres-kinds-{os.getpid()}"
    script = ("set -e; initdb -D /tmp/data -U postgres --no-sync >/dev/null; "
              "exec postgres -D /tmp/data -c listen_addresses= -c unix_socket_directories=/tmp "
              f"-c extension_control_path='$system:{mount}/share' "
              f"-c dynamic_library_path='$libdir:{mount}/lib'")
    run = subprocess.run(["docker", "run", "-d", "--name", name, "--network", "host",
                          "-v", f"{world_dir / 'postgis'}:{mount}:ro",
                          *(a for e in env for a in ("-e", e)), image, "bash", "-c", script],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    try:
        psql = ["docker", "exec", name, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", "/tmp", "-U", "postgres", "postgres"]
        for _ in range(60):
            if subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True).returncode == 0:
                break
            subprocess.run(["sleep", "1"])
        out = subprocess.run([*psql, "-c", POSTGIS_SQL], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == POSTGIS_ANSWER
        # Every library resolves, the bundled ones from system/: nothing is missing from it.
        resolved = {}
        for lib in ("postgis-3.so", "postgis_raster-3.so", "postgis_topology-3.so"):
            ldd = subprocess.run(["docker", "exec", name, "ldd", f"{mount}/lib/{lib}"],
                                 capture_output=True, text=True)
            assert ldd.returncode == 0 and "not found" not in ldd.stdout, ldd.stdout
            resolved.update({line.split()[0]: line.split()[2] for line in ldd.stdout.splitlines()
                             if "=>" in line and len(line.split()) > 2})
        for lib in POSTGIS_LIBS:
            assert os.path.normpath(resolved[lib]) == f"{mount}/system/{lib}", (lib, resolved)
        readelf = subprocess.run(["readelf", "-d", str(world_dir / "postgis/lib/postgis-3.so")],
                                 capture_output=True, text=True, check=True).stdout
        assert "(RPATH)" in readelf and "[$ORIGIN/../system]" in readelf
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def test_postgis_on_bare_metal_from_oras_and_install(kinds: tuple[Built, Published],
                                                     world_dir: Path) -> None:
    """oras pull gives the same tree; install + the printed settings run it without any
    LD_LIBRARY_PATH: the RPATH finds system/."""
    built, published = kinds
    pulled = world_dir / "oras"
    oras = subprocess.run(["oras", "pull", "--plain-http", "--platform", "linux/amd64",
                           published.tag_ref(tag("postgis")), "-o", str(pulled)],
                          capture_output=True, text=True, timeout=600)
    assert oras.returncode == 0, oras.stderr
    assert (pulled / "system/libgeos_c.so.1").is_file()
    dest = world_dir / "root"
    out = json.loads(cli("install", published.tag_ref("postgresql-dist:18.6-regular-bookworm"),
                         published.tag_ref(tag("postgis")), "--dest", str(dest), "--key",
                         str(published.keys.public), "--json").stdout)
    env = out["environment"]
    assert env["PROJ_DATA"] == f"{dest}/postgis/share/proj"
    bindir = dest / "usr/lib/postgresql/18/bin"
    data, sock = world_dir / "data", world_dir / "sock"
    for d in (data, sock):
        d.mkdir()
        subprocess.run(["chown", "nobody", str(d)], check=True)
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    subprocess.run([*as_nobody, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True)
    with open(data / "postgresql.auto.conf", "a") as f:
        f.write("\n".join(out["postgresql_conf"]) + "\n")
    server_env = {k: v for k, v in env.items() if k not in ("LD_LIBRARY_PATH", "PATH")}
    log = world_dir / "pg.log"
    with open(log, "w") as log_file:
        server = subprocess.Popen([*as_nobody, "env", *(f"{k}={v}" for k, v in server_env.items()),
                                   str(bindir / "postgres"), "-D", str(data), "-c",
                                   "listen_addresses=", "-c", f"unix_socket_directories={sock}"],
                                  stdout=log_file, stderr=subprocess.STDOUT)
    try:
        psql = [*as_nobody, str(bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(sock), "-U", "postgres", "postgres"]
        for _ in range(60):
            if subprocess.run([*psql, "-c", "SELECT 1"], capture_output=True).returncode == 0:
                break
            subprocess.run(["sleep", "1"])
        result = subprocess.run([*psql, "-c", POSTGIS_SQL], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr + log.read_text()[-3000:]
        assert result.stdout.split() == POSTGIS_ANSWER
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_publish_refuses_untested_images_until_the_gate_ran(
        catalog: Path, base_image: str, registry: Any, tmp_path: Path) -> None:
    from tests.e2e.conftest import build_args

    out = tmp_path / "oci"
    args = build_args(catalog, base_image, out, "greet")
    cli(*args, "--no-gate")
    target = f"{registry.host}/untested"
    refused = cli("publish", "--registry", target, "--layout", str(out), check=False)
    assert refused.returncode == 2
    assert "not proven to work; nothing was pushed" in refused.stderr
    assert "greet:18.6-1.0-bookworm" in refused.stderr
    tested = json.loads(cli("test", "--catalog", str(catalog), "--layout", str(out),
                            "--cache-dir", args[args.index("--cache-dir") + 1], "--json").stdout)
    (result,) = tested["results"]
    assert result["ok"] and result["gate"]["verdict"] == "PASSED"
    cli("publish", "--registry", target, "--layout", str(out))


def test_test_runs_the_gate_on_published_images(kinds: tuple[Built, Published],
                                                 tmp_path: Path) -> None:
    """`monogres-oci test REF` builds the target again from the catalog (cached compiles), checks
    it is the very image published, and gates it; the result lands in a layout to publish."""
    built, published = kinds
    out = json.loads(cli("test", published.tag_ref(tag("unit")), "--catalog", str(built.catalog),
                         "--cache-dir", str(CACHE), "--out", str(tmp_path / "tested"),
                         "--json").stdout)
    (result,) = out["results"]
    assert result["ok"] and result["gate"]["suite"]["passed"] == 19
    assert result["gate"]["image"] == json.loads(subprocess.run(
        ["crane", "manifest", "--insecure", published.tag_ref(tag("unit"))], capture_output=True,
        text=True, check=True).stdout)["manifests"][0]["digest"]
    refused = cli("test", published.tag_ref("postgresql:18.6-regular-bookworm"), "--catalog",
                  str(built.catalog), "--cache-dir", str(CACHE), check=False)
    assert refused.returncode == 2 and "is not an extension image" in refused.stderr


def test_status_shows_what_each_target_came_to(kinds: tuple[Built, Published]) -> None:
    built, published = kinds
    args = ["status", "--catalog", str(built.catalog), "--postgres", "18.6", "--option-set",
            "regular", "--arch", "amd64", "--distro", "bookworm",
            "--base", f"bookworm={built.base_image}", "--cache-dir", str(CACHE)]
    for name in ("postgis", "greet", "pg_repack", "unit", "sour", "badpath"):
        args += ["--extension", name]
    registry = f"{published.registry.host}/{published.namespace}"
    rows = {r["name"]: r for r in json.loads(cli(*args, "--registry", registry, "--json").stdout)[
        "targets"]}
    suite = targets(built)["postgis"]["gate"]["suite"]
    assert rows["postgis"]["state"] == "published"
    assert rows["postgis"]["tests"] == f"{suite['passed']}/{suite['total']}"
    assert rows["postgis"]["detail"].startswith(tag("postgis"))
    assert rows["postgresql"]["state"] == "published"
    assert rows["sour"]["state"] == "failed" and rows["sour"]["detail"].startswith("gate: FAILED")
    assert rows["badpath"]["state"] == "failed"
    assert rows["badpath"]["detail"].startswith("package: ")
    # Without the registry the same targets are tested, not published; other namespaces hold none.
    local = {r["name"]: r["state"] for r in json.loads(cli(*args, "--json").stdout)["targets"]}
    assert local["postgis"] == local["greet"] == "tested" and local["sour"] == "failed"
    elsewhere = json.loads(cli(*args, "--registry", f"{published.registry.host}/nothing-here",
                               "--json").stdout)
    assert "published" not in elsewhere["counts"]
    table = cli(*args, "--markdown").stdout
    assert "| postgis | 3.6.4 | passed " in table and "| sour | 1.0 | FAILED [" in table


def test_each_build_gets_the_bytes_of_the_tree_it_is_given(kinds: tuple[Built, Published],
                                                            tmp_path: Path) -> None:
    """Two greet trees that differ only in the bytes of greet.control (same paths, sizes, modes
    and mtimes, as every tree here has the same mtimes): atop built against each, one after the
    other, reads each one's version, run after run. BuildKit's checksums missed that byte: before
    the build steps were keyed by the trees' digests, a second run's 1.0 build was served the
    1.9 build's result (content-named contexts and content-derived mtimes alone did not help)."""
    built, _ = kinds
    layout = Layout.open(built.layout)
    index = layout.read_index(layout.resolve(tag("atop")).digest)
    key = layout.read_manifest(index.manifests[0].digest).annotations["org.monogres.input.digest"]
    record = json.loads((CACHE / "builds" / key.removeprefix("sha256:") / "meta"
                         / "buildinfo.json").read_text())
    (greet,) = record["built_against"]
    greet_tree = CACHE / "builds" / greet["input_digest"].removeprefix("sha256:") / "install"
    control = "usr/lib/postgresql/18/share/extension/greet.control"
    versions = {}
    for version in ("1.0", "1.9"):  # 1.0: greet's own bytes; 1.9: one byte changed
        tree = tmp_path / version / "install"
        shutil.copytree(greet_tree, tree)  # copy2: the same modes and mtimes
        original = (greet_tree / control).read_text()
        (tree / control).write_text(original.replace("default_version = '1.0'",
                                                      f"default_version = '{version}'"))
        shutil.copystat(greet_tree / control, tree / control)
        assert os.stat(tree / control).st_size == os.stat(greet_tree / control).st_size
        invocation = ExtensionInvocation(
            what=f"atop against greet {version}", platform=record["platform"],
            build_args=record["build_args"],
            context_files=(CACHE / "sources" / "sha256" / record["sources"][0]["sha256"],),
            postgres_install=CACHE / "builds" / record["postgres"]["input_digest"].removeprefix(
                "sha256:") / "install",
            provided=(), built_against=tree)
        out = compile_extension(invocation, out_dir=tmp_path / version / "atop",
                                progress=lambda _: None, cache_key=f"test-{version}")
        sql = (out.install_root / "usr/lib/postgresql/18/share/extension/atop--1.0.sql").read_text()
        versions[version] = sql.split("'greet ", 1)[1].split("'", 1)[0]
    assert versions == {"1.0": "1.0", "1.9": "1.9"}
