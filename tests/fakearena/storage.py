"""An object store with presigned URLs on the fake's own origin (the site uses Cloudflare R2)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

PREFIX = "/r2/"
_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class StoredObject:
    data: bytes
    content_type: str


@dataclass
class Bucket:
    objects: dict[str, StoredObject] = field(default_factory=dict)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def _signature(self, method: str, key: str, date: str, expires: str) -> str:
        message = f"{method}\n{key}\n{date}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def signed_url(self, origin: str, method: str, key: str, expires: int, now: float) -> str:
        """A URL that lets anyone `method` (GET or PUT) this key for `expires` seconds."""
        date = datetime.fromtimestamp(now, UTC).strftime(_DATE)
        signature = self._signature(method, key, date, str(expires))
        operation = "PutObject" if method == "PUT" else "GetObject"
        return (
            f"{origin}{PREFIX}{quote(key)}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&X-Amz-Credential=FAKE&X-Amz-Date={date}"
            f"&X-Amz-Expires={expires}&X-Amz-Signature={signature}&X-Amz-SignedHeaders=host"
            f"&x-id={operation}"
        )

    def check(self, method: str, key: str, query: dict[str, str], now: float) -> str | None:
        """Why a request may not `method` this key (an S3 error code), or None if it may."""
        date, expires = query.get("X-Amz-Date", ""), query.get("X-Amz-Expires", "")
        expected = self._signature(method, key, date, expires)
        if not hmac.compare_digest(expected, query.get("X-Amz-Signature", "")):
            return "SignatureDoesNotMatch"
        signed_at = datetime.strptime(date, _DATE).replace(tzinfo=UTC).timestamp()
        if now > signed_at + int(expires):
            return "AccessDenied"
        return None
