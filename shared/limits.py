"""Length limits of the contracts' shared fields, checked by every service that receives them."""

MAX_ID_LENGTH = 128  # user, item, event, request and session ids
MAX_SEGMENT_LENGTH = 64  # Event.segment and the requests that name a segment

# The largest request message each method takes, in bytes; the rest take DEFAULT_REQUEST_BYTES. The
# bulk writes hold up to 10,000 records (push settings take the default: 10,000 of them fit in
# about 2.5 MB); a Recommend or a push is a few ids. Checked before the
# message is parsed (shared/interceptors.py); every server also caps any message at
# MAX_MESSAGE_BYTES (gRPC's own receive limit).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_REQUEST_BYTES = 4 * 1024 * 1024
SMALL_REQUEST_BYTES = 64 * 1024
REQUEST_BYTES = {
    "/recsys.gateway.v1.GatewayService/Recommend": SMALL_REQUEST_BYTES,
    "/recsys.gateway.v1.GatewayService/GeneratePush": SMALL_REQUEST_BYTES,
    "/recsys.gateway.v1.GatewayService/PlanPushCampaign": SMALL_REQUEST_BYTES,
    "/recsys.gateway.v1.GatewayService/RecordFeedback": MAX_MESSAGE_BYTES,
    "/recsys.profile.v1.ProfileService/RecordEvents": MAX_MESSAGE_BYTES,
    "/recsys.items.v1.ItemsService/UpsertItems": MAX_MESSAGE_BYTES,
}


def request_bytes(method: str) -> int:
    return REQUEST_BYTES.get(method, DEFAULT_REQUEST_BYTES)
