"""The contracts' enums name exactly the strings the code uses, and requests may use either."""

import grpc
import pytest

from recsys.common.v1 import common_pb2
from services.gateway.push.templates import OCCASIONS
from services.policy.settings import POLICY_KINDS
from shared import metrics, sources
from shared.closed_sets import POLICIES, PUSH_TEMPLATES, SOURCES, STAGES, SURFACES
from shared.errors import InvalidArgument
from shared.surfaces import SURFACES as SURFACE_NAMES


@pytest.mark.parametrize(
    ("closed", "names"),
    [
        (SURFACES, SURFACE_NAMES),
        (POLICIES, POLICY_KINDS),
        (STAGES, metrics.STAGES),
        (SOURCES, sources.ALL),
        (PUSH_TEMPLATES, OCCASIONS),
    ],
)
def test_every_enum_names_exactly_the_strings_the_code_uses(closed, names) -> None:
    assert set(closed.names) == set(names)
    assert {closed.number(name) for name in names} == set(closed.name_of)
    assert 0 not in closed.name_of


def test_a_request_names_a_member_by_either_field() -> None:
    assert SURFACES.number("product") == common_pb2.SURFACE_PRODUCT
    assert POLICIES.resolve("", common_pb2.POLICY_EPSILON_GREEDY, "policy") == "epsilon-greedy"
    assert POLICIES.resolve("epsilon-greedy", common_pb2.POLICY_EPSILON_GREEDY, "policy") == "epsilon-greedy"
    assert POLICIES.resolve("bandit", common_pb2.POLICY_UNSPECIFIED, "policy") == "bandit"
    assert POLICIES.resolve("", common_pb2.POLICY_UNSPECIFIED, "policy") == ""


def test_typed_and_string_fields_that_disagree_are_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as raised:
        SURFACES.resolve("home", common_pb2.SURFACE_CART, "surface")
    assert raised.value.field == "surface_kind" and raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "'cart'" in raised.value.message and "'home'" in raised.value.message
    with pytest.raises(InvalidArgument, match=r"not a value of recsys\.common\.v1\.Surface"):
        SURFACES.resolve("", 99, "surface")
