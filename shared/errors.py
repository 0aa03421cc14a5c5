"""Domain errors that servicers raise; the error-mapping interceptor turns them into statuses.

Each status also carries `google.rpc.Status` details (the `grpc-status-details-bin` trailer that
gRPC's rich error model reads): an ErrorInfo with the reason and the service's domain, a
BadRequest field violation naming the field of an invalid argument, and a RetryInfo where waiting
helps.
"""

from __future__ import annotations

import re

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

DOMAIN = "recsys"
# An error message travels twice in the trailers (grpc-message and the details); gRPC refuses
# trailers over 8 KiB with RESOURCE_EXHAUSTED, so a message quoting a long input is cut here.
MAX_MESSAGE_CHARS = 1000
# "user_id must not be empty", "events[3].timestamp is out of range": the field comes first.
LEADING_FIELD = re.compile(
    r"^([a-z][a-z0-9_]*(?:\[\d+\])?(?:\.[a-z][a-z0-9_]*(?:\[\d+\])?)*) (?:must|is|are|has|needs)\b"
)


class ServiceError(Exception):
    """An expected failure with a gRPC status code and a message for the caller."""

    code = grpc.StatusCode.INTERNAL
    retry_after_s: float | None = None

    def __init__(self, message: str) -> None:
        if len(message) > MAX_MESSAGE_CHARS:  # it may quote the caller's input, of any length
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        super().__init__(message)
        self.message = message

    @property
    def reason(self) -> str:
        return self.code.name

    def details(self) -> list[object]:
        """The google.rpc detail messages of this error (ErrorInfo first)."""
        found: list[object] = [error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)]
        if self.retry_after_s is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after_s * 1e9))
            found.append(error_details_pb2.RetryInfo(retry_delay=delay))
        return found

    def status(self) -> status_pb2.Status:
        packed = []
        for detail in self.details():
            wrapped = any_pb2.Any()
            wrapped.Pack(detail)
            packed.append(wrapped)
        return status_pb2.Status(code=self.code.value[0], message=self.message, details=packed)


class InvalidArgument(ServiceError):
    """`field` names the offending field (by default the one the message starts with)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        leading = LEADING_FIELD.match(message)
        self.field = field if field is not None else (leading.group(1) if leading else "")

    def details(self) -> list[object]:
        found = super().details()
        if self.field:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=self.field, description=self.message
            )
            found.append(error_details_pb2.BadRequest(field_violations=[violation]))
        return found


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    """The call is valid but the system is not ready for it (for example no model trained yet)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    retry_after_s = 1.0


def require(condition: bool, message: str, field: str | None = None) -> None:
    """Raises InvalidArgument(message, field) unless condition holds."""
    if not condition:
        raise InvalidArgument(message, field)


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(ServiceError):
    """Over a quota: `retry_after_s` says when a call would be allowed again."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class MessageTooLarge(ServiceError):
    """A request message over its method's size limit (shared/limits.py): RESOURCE_EXHAUSTED, as
    gRPC answers a message over the channel's limit; retrying the same message cannot help."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    @property
    def reason(self) -> str:
        return "MESSAGE_TOO_LARGE"


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED
