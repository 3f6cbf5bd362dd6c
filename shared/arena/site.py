"""Every fact about the arena's site that a deploy of it can change, each under its own name.

What can be read off the live site is read at run time (the reCAPTCHA key the page loads, the
server action ids, the catalog, the mode new chats take); what the bridge has to assume — where
to look, and what the site calls things — is here and nowhere else. When the site changes, this
is the module to edit; `lmarena-bridge doctor` checks each assumption against the live site and
names the facts behind a check that fails (`worker.arena.doctor.FACTS`).

Values are as the captures (Nov–Dec 2025) and the reports of Sep–Oct 2026 give them; where the
two differ, both are here, today's first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

#: What kind of answer a model gives (code models chat, on the code arena's board).
Kind = Literal["chat", "reasoning", "code", "search", "image", "video"]

# --- Pages ---------------------------------------------------------------------------------

#: The chat page a worker opens, under LMB_ARENA_URL. (`/?mode=direct` moved to `/text/direct`
#: in 2026; `/` stayed a chat page on both sites.)
CHAT_PAGE: Final = "/"
#: Every page of the site is a Next.js App Router page: its flight data is pushed here.
NEXT_PAYLOAD: Final = "self.__next_f"
#: What Next.js shows for an unknown path; since 2026 that page comes with status 200.
NOT_FOUND_TEXT: Final = "This page could not be found."
#: Cloudflare's pages instead of the site: titles of its interstitial and block page, and
#: the interstitial's challenge bootstrap and script path.
CHALLENGE_MARKERS: Final = (
    "Just a moment...",
    "Attention Required!",
    "_cf_chl_opt",
    "orchestrate/chl_page",
)

# --- Who is signed in ----------------------------------------------------------------------

#: The Supabase session cookie; often split into `<name>.0`, `<name>.1`, … (joined in order).
AUTH_COOKIE: Final = "arena-auth-prod-v1"
#: How the cookie's value starts: base64url JSON of the session follows.
AUTH_COOKIE_PREFIX: Final = "base64-"
#: Cookies Cloudflare binds to the browser (and address) that got them: one exported from a
#: person's browser fails in a worker's, and would replace the clearance the worker has.
BROWSER_BOUND_COOKIES: Final = frozenset({"cf_clearance", "__cf_bm"})
#: 200 with the user when signed in, 401 when not (2026; where it does not answer, the
#: cookie is all there is to go by).
ME_PATH: Final = "/api/me"

# --- reCAPTCHA -----------------------------------------------------------------------------

#: The reCAPTCHA Enterprise script the page loads, with the site key as `render=`.
SITE_KEY_PATTERN: Final = re.compile(
    r"recaptcha/enterprise\.js\?(?:[^\"'\s<>]*?&(?:amp;)?)?render=([\w-]{20,})"
)
#: The site key as last seen (since 2026-05-16; before: 6Led_uYrAAAAAKjxDIF58fgFtX3t8loNAK85bW9I).
#: The page's own key is used; this one only when the page shows none.
SITE_KEY: Final = "6LeTGMcsAAAAALuIlkVwIxaAuZA8VledA6d3Nnb0"
#: The token action each stream request takes, most likely first: a retry takes `chat_retry`
#: since 2026 and `chat_submit` before. A worker remembers which one the site took.
TOKEN_ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "create": ("chat_submit",),
    "post": ("chat_submit",),
    "retry": ("chat_retry", "chat_submit"),
}
#: A 403 whose body says this is a refused token (not Cloudflare). When a freshly minted token
#: is refused too, the account is flagged: every call answers this until a person passes the
#: site's security check.
RECAPTCHA_REFUSAL: Final = "recaptcha"

# --- An account's standing -----------------------------------------------------------------

#: A 429 whose JSON `error` is this is the account's own limit, or a prompt it will not take
#: (the other 429, plain text with `retry-after`, is a global or per-address limit).
PROMPT_REFUSAL: Final = "prompt failed"
#: A flagged account's page shows a dialog with this title and a reCAPTCHA v2 checkbox.
SECURITY_CHECK_DIALOG: Final = '[role="dialog"]'
SECURITY_CHECK_TITLE: Final = "Security Verification"
#: Where the v2 checkbox leaves its token once a person passed it (Google's widget) …
V2_RESPONSE_FIELD: Final = 'textarea[name="g-recaptcha-response"]'
#: … but not inside the v3 badge, whose own field of that name holds v3 tokens.
V3_BADGE: Final = ".grecaptcha-badge"
#: The account's credits (2026): a JSON answer when the site has them for the account.
BILLING_PATH: Final = "/api/billing/balance"

# --- Stream requests -----------------------------------------------------------------------

STREAM_PREFIX: Final = "/nextjs-api/stream/"
CREATE_PATH: Final = STREAM_PREFIX + "create-evaluation"
POST_PATH: Final = STREAM_PREFIX + "post-to-evaluation/{session}"
RETRY_PATH: Final = STREAM_PREFIX + "retry-evaluation-session-message/{session}/messages/{message}"
STOP_PATH: Final = STREAM_PREFIX + "stop/{session}/messages/{message}"
#: The modes a new one-model chat may go out in, tried in this order: `direct-battle` since
#: 2026 (which refuses `direct` on create), `direct` before. A worker remembers what worked.
CHAT_MODES: Final = ("direct-battle", "direct")
#: A 400 to a create whose message says this refused the mode, not the rest of the body.
MODE_REFUSAL: Final = re.compile(r"\bmode\b", re.IGNORECASE)
#: A 401 carrying this: guests may not chat in this mode (a person must sign in).
LOGIN_GATE: Final = "LOGIN_GATE"
#: Somewhere on a stream line: the answer failed.
ARENA_ERROR_MARKER: Final = '"hasArenaError"'

# --- Model catalog -------------------------------------------------------------------------

#: The catalog as arena groups, public JSON (2026).
CATALOG_PATH: Final = "/nextjs-api/model-catalog"
#: The catalog inside the chat page's RSC payload (2025; `"$undefined"` since 2026).
RSC_CATALOG_KEY: Final = '"initialModels":'
#: The arena groups of the catalog and the kind of answer their models give, in the order a
#: model found in several takes its kind from; a group not named here goes by capabilities.
CATALOG_GROUPS: Final[Mapping[str, Kind]] = {
    "text": "chat",
    "document": "chat",
    "code": "code",
    "search": "search",
    "text-to-image": "image",
    "text-to-video": "video",
}
#: A public name that says so is a reasoning model (the catalog has no such flag).
REASONING_NAME: Final = re.compile(r"(?<!no-)thinking", re.IGNORECASE)

# --- Server actions ------------------------------------------------------------------------

#: The page's JS chunks that declare server actions hold this …
SERVER_REFERENCE_SCRIPT: Final = "createServerReference"
#: … as `createServerReference("<id>", …, "<name>")`.
SERVER_REFERENCE: Final = re.compile(
    r"createServerReference\)?\s*\(\s*([\"'])([0-9a-fA-F]{40,})\1"
    r"[^\"']{0,400}?([\"'])([A-Za-z_$][\w$]*)\3\s*\)"
)
#: Uploading an image: a presigned URL and key, then the URL a message attaches.
GENERATE_UPLOAD_URL: Final = "generateUploadUrl"
GET_SIGNED_URL: Final = "getSignedUrl"
#: Deleting a chat (2026), `[sessionId]`.
DELETE_CHAT: Final = "deleteEvaluationSession"
#: What the site answers for an action id it no longer has (it was deployed again).
UNKNOWN_ACTION_STATUS: Final = 404
