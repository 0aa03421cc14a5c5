"""Every contract names its Go and Java packages after its own proto package, so that clients
generated in those languages from protos/ alone land in predictable, versioned packages."""

import pytest

from recsys.candidates.v1 import candidates_pb2
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys.items.v1 import items_pb2
from recsys.policy.v1 import policy_pb2
from recsys.profile.v1 import profile_pb2
from recsys.ranking.v1 import ranking_pb2
from recsys.tfserving.v1 import tfserving_pb2

FILES = [
    candidates_pb2,
    common_pb2,
    gateway_pb2,
    items_pb2,
    policy_pb2,
    profile_pb2,
    ranking_pb2,
    tfserving_pb2,
]


@pytest.mark.parametrize("module", FILES, ids=lambda module: module.DESCRIPTOR.package)
def test_go_and_java_packages_follow_the_proto_package(module) -> None:
    package = module.DESCRIPTOR.package  # recsys.<name>.v1
    name = package.split(".")[1]
    options = module.DESCRIPTOR.GetOptions()
    assert options.go_package == f"recsys/gen/go/{package.replace('.', '/')};{name}v1"
    assert options.java_package == package and options.java_multiple_files
