"""The contracts' closed sets: a typed enum beside each string field that names a member.

The string fields came first and stay (changing a field's type breaks clients built from the
last release); the enum fields beside them name the same members. Each member's string is
derived from its enum value's name: `SURFACE_PRODUCT` is "product", `POLICY_EPSILON_GREEDY` is
"epsilon-greedy" (the separator differs per set, as the strings were spelled).
"""

from __future__ import annotations

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from shared.errors import InvalidArgument


class ClosedSet:
    """The members of one enum by string and by number (its UNSPECIFIED value is neither)."""

    def __init__(self, enum: EnumTypeWrapper, separator: str) -> None:
        prefix = enum.DESCRIPTOR.name
        prefix = "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(prefix)).upper() + "_"
        self.enum = enum
        self.number_of: dict[str, int] = {
            name[len(prefix) :].lower().replace("_", separator): number
            for name, number in enum.items()
            if number != 0
        }
        self.name_of: dict[int, str] = {number: name for name, number in self.number_of.items()}
        self.names = tuple(self.number_of)

    def number(self, name: str) -> int:
        """The enum value of a member's string; 0 (unspecified) for a string outside the set."""
        return self.number_of.get(name, 0)

    def resolve(self, name: str, number: int, field: str) -> str:
        """The member a request names by its string field (`field`) and its typed field
        (`field`_kind), either of which may be unset; "" when both are.

        INVALID_ARGUMENT when the typed value is not a member or the two name different ones.
        """
        if number == 0:
            return name
        typed = self.name_of.get(number)
        if typed is None:
            raise InvalidArgument(f"{field}_kind {number} is not a value of {self.enum.DESCRIPTOR.full_name}")
        if name and name != typed:
            raise InvalidArgument(
                f"{field}_kind names {typed!r} but {field} names {name!r}; set one of them",
                field=f"{field}_kind",
            )
        return typed


SURFACES = ClosedSet(common_pb2.Surface, "-")
POLICIES = ClosedSet(common_pb2.Policy, "-")
STAGES = ClosedSet(common_pb2.Stage, "-")
SOURCES = ClosedSet(common_pb2.Source, "-")
PUSH_TEMPLATES = ClosedSet(gateway_pb2.PushTemplate, "_")
