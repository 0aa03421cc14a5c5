"""Domain errors that servicers raise; the error-mapping interceptor turns them into statuses."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """An expected failure with a gRPC status code and a message for the caller."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    """The call is valid but the system is not ready for it (for example no model trained yet)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


def require(condition: bool, message: str) -> None:
    """Raises InvalidArgument(message) unless condition holds."""
    if not condition:
        raise InvalidArgument(message)


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED
