"""The password of a worker's VNC screen, derived rather than stored.

A worker starts x11vnc with `password(admin key, worker id, salt)` and publishes only the salt
(random per start) in its heartbeat. A gateway holds the admin key, so it can derive the password
for the viewer it serves behind admin authentication; whoever merely reads Redis cannot.
"""

from __future__ import annotations

import base64
import secrets

from shared.credentials.admin_key import derived

#: VNC authentication (DES) uses the first 8 characters of a password and ignores the rest.
_LENGTH = 8


def new_salt() -> str:
    return secrets.token_urlsafe(16)


def password(admin_key: str, worker_id: str, salt: str) -> str:
    digest = derived(admin_key, "vnc", worker_id, salt)
    return base64.urlsafe_b64encode(digest).decode()[:_LENGTH]
