"""Paging through a segment's shoppers, as campaigns and promotion plans do."""

from __future__ import annotations

import grpc

from recsys.profile.v1 import profile_pb2
from shared.clients import SuiteClients
from shared.errors import Unavailable


async def list_page(
    clients: SuiteClients, segment: str, after: str, size: int, timeout: float, retry_hint: str
) -> profile_pb2.ListUsersResponse:
    """The next `size` shoppers of the segment after `after` (one short call per page, so that a long
    plan holds no stream open); UNAVAILABLE ending with `retry_hint` when the listing fails."""
    listing = clients.profile.ListUsers(
        profile_pb2.ListUsersRequest(segment=segment, after_user_id=after, batch_size=size, limit=size),
        timeout=timeout,
    )
    try:
        async for page in listing:
            return page
    except grpc.aio.AioRpcError as error:
        raise Unavailable(
            f"the profile service could not list the shoppers ({error.code().name}); {retry_hint}"
        ) from error
    return profile_pb2.ListUsersResponse()
