"""Whether an admin key is strong enough to guard the admin surfaces and the workers' screens.

The key is compared as it is (and derives the VNC passwords): nothing slows down guessing it but
its length and randomness, and the sign-in throttle. Checked when a gateway or worker starts.
"""

from __future__ import annotations

import hashlib
import hmac

#: 32 characters: 128 bits as hex (`openssl rand -hex 16`), more in any richer alphabet.
MIN_LENGTH = 32
#: Distinct characters below this say the key was typed, not drawn (`aaaa…`, `0101…`).
MIN_DISTINCT = 8
#: Words of example values (`.env.example`'s among them) and of keys people make up.
PLACEHOLDERS = ("change", "replace", "example", "placeholder", "secret", "password", "admin-key")
HOW = "Make one with `openssl rand -hex 32`."


def weakness(key: str) -> str | None:
    """Why `key` is too weak to use, or None."""
    if len(key) < MIN_LENGTH:
        return f"it has {len(key)} characters, fewer than {MIN_LENGTH}"
    lowered = key.lower()
    for word in PLACEHOLDERS:
        if word in lowered:
            return f"it looks like an example value (it says “{word}”)"
    if len(set(key)) < MIN_DISTINCT:
        return f"it uses only {len(set(key))} different characters"
    return None


def problem(key: str | None) -> str | None:
    """What to tell an operator whose LMB_ADMIN_KEY is too weak, or None."""
    why = weakness(key) if key is not None else None
    return (
        None if why is None else f"LMB_ADMIN_KEY is too weak to guard the admin page: {why}. {HOW}"
    )


def derived(key: str, *context: str) -> bytes:
    """A secret for one use, named by `context`, derived from the admin key (HMAC-SHA256): what
    the workers' screens and the imported cookies are locked with, so that Redis holds neither."""
    return hmac.new(key.encode(), "\0".join(context).encode(), hashlib.sha256).digest()
