"""Malformed catalogs never produce a traceback: whatever the document, loading it gives a
Catalog or a CatalogError that names the file (property-based, with Hypothesis).

Two sources of documents: the shipped catalog with random mutations (a key removed, a value
replaced by another type or by a random string, an unknown key added: the errors a person makes
editing it), and arbitrary text.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monogres_oci.catalog import load_catalog
from monogres_oci.errors import CatalogError

REPO = Path(__file__).resolve().parents[3]
SHIPPED = yaml.safe_load((REPO / "extensions.yaml").read_text())

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=False),
                    st.text(max_size=20), st.sampled_from(["", "18", ">=17", "bookworm", "pgxs",
                                                           "sha256:", "../x", "$libdir/x"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node of the document."""
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += paths(child, (*prefix, i))
    return found


ALL_PATHS = paths(SHIPPED)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(SHIPPED)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent: Any = doc
        try:
            for step in path[:-1]:
                parent = parent[step]
            key = path[-1]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[key] = draw(values)
            elif action == "delete":
                del parent[key]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
            elif isinstance(parent, list):
                parent.append(draw(values))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or reshaped this path
    return doc


def load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "extensions.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_catalog(path)
    except CatalogError as exc:
        assert str(path) in str(exc)


FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(mutated())
def test_a_mutated_catalog_loads_or_is_refused_with_a_catalog_error(tmp_path: Path,
                                                                    doc: Any) -> None:
    load(tmp_path, yaml.safe_dump(doc, sort_keys=False))


@FUZZ
@given(st.one_of(st.text(max_size=300), values.map(lambda v: yaml.safe_dump(v))))
def test_any_text_loads_or_is_refused_with_a_catalog_error(tmp_path: Path, text: str) -> None:
    load(tmp_path, text)


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    """Found by the fuzzing above: an empty file raised AttributeError."""
    path = tmp_path / "extensions.yaml"
    path.write_text("")
    try:
        load_catalog(path)
    except CatalogError as exc:
        assert "holds no YAML document" in str(exc)
    else:
        raise AssertionError("an empty catalog was accepted")
