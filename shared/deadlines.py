"""The caller's deadline, passed on: the timeout of a call a server makes while answering one.

gRPC Python does not carry a server call's deadline into the calls its handler makes, so a
downstream call would wait its own default however little time the caller left. A hung
dependency then costs the whole request instead of its share, and the caller gives up on an
answer that could have been given without that dependency.
"""

from __future__ import annotations

import grpc

# Kept back from what the caller left, to build and send the answer after the downstream calls:
# a fixed part and a share of the time left (as the gateway keeps back from its caller's deadline).
REPLY_RESERVE_S = 0.01
REPLY_SHARE = 0.1
# The shortest timeout a downstream call is made with; below it the call fails at once.
MIN_CALL_S = 0.001


def downstream_timeout(context: grpc.aio.ServicerContext, ceiling_s: float) -> float:
    """The timeout of a call made now for `context`'s caller: what the caller left, less what the
    answer needs, and never more than `ceiling_s` (the call's own default, used alone when the
    caller set no deadline)."""
    remaining = context.time_remaining()
    if remaining is None:
        return ceiling_s
    left = remaining - REPLY_RESERVE_S - REPLY_SHARE * remaining
    return max(min(ceiling_s, left), MIN_CALL_S)
