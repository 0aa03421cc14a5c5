"""Length limits of the contracts' shared fields, checked by every service that receives them."""

MAX_ID_LENGTH = 128  # user, item, event, request and session ids
MAX_SEGMENT_LENGTH = 64  # Event.segment and the requests that name a segment
