"""What the gate mounts beside an extension."""

from monogres_oci.catalog.model import required_closure


def test_the_gate_mounts_what_the_required_extensions_require_too() -> None:
    # londiste requires pgq_node, which requires pgq: CREATE EXTENSION londiste CASCADE needs
    # all three images mounted (with pgq_node's alone: 'extension "pgq" is not available')
    requires = {"londiste": ("pgq_node",), "pgq_node": ("pgq",), "pgq": ()}
    assert required_closure(["pgq_node"], requires) == ["pgq", "pgq_node"]
    # each once, what is required before what requires it
    diamond = {"a": ("b", "c"), "b": ("d",), "c": ("d",), "d": ()}
    assert required_closure(["b", "c"], diamond) == ["d", "b", "c"]
    assert required_closure([], requires) == []
