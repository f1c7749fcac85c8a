"""A stored file answered as a download (CONTRACT §4, §5)."""

import io

from flask import Response, send_file

from leads.attachments.models import Attachment

# The OpenAPI description of a file answer.
FILE_SCHEMA = {"type": "string", "format": "binary"}


def file_response(attachment: Attachment) -> Response:
    """The file's bytes, with its content type, as an attachment under its (already safe)
    name; werkzeug writes `filename` and, for a name beyond ASCII, RFC 5987's `filename*`."""
    response = send_file(io.BytesIO(attachment.content), mimetype=attachment.content_type,
                         as_attachment=True, download_name=attachment.filename,
                         etag=False, conditional=False, max_age=None)
    # Health data: no cache on the way may keep a copy; and a browser must never read a file
    # as anything but its checked type.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
