"""The gate stage: every extension image is proven to work before it is published.

The image is mounted in the runnable Postgres image of its own build the way CloudNativePG mounts
image volumes, each of its extensions is created, and its own upstream regression suite runs
against that server from the build tree. The result is attached to the image as a test-result
attestation; an image that fails is not tagged, so nothing publishes it.
"""

from monogres_oci.errors import GateError
from monogres_oci.gate.check import check_gated, gate_verdicts
from monogres_oci.gate.results import TEST_RESULT_PREDICATE, GateResult, result_statement
from monogres_oci.gate.run import GateSubject, attach_result, gate_extension

__all__ = ["TEST_RESULT_PREDICATE", "GateError", "GateResult", "GateSubject", "attach_result",
           "check_gated", "gate_extension", "gate_verdicts", "result_statement"]
