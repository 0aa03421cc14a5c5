"""Server reflection under both of its names: `grpc.reflection.v1` (what current grpcurl, Postman
and gRPC UI ask first) and `grpc.reflection.v1alpha` (older tools).

grpcio-reflection ships only the v1alpha service; v1's messages are the same on the wire, so the
same servicer answers on v1's method path.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = reflection.SERVICE_NAME


def enable_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Reflection of `service_names`, the reflection services themselves listed too."""
    servicer = reflection.aio.ReflectionServicer([*service_names, V1, V1ALPHA])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.method_handlers_generic_handler(
        V1,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))
