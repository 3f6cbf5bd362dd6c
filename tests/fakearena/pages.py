"""The HTML and JavaScript the fake serves (pure text builders)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from tests.fakearena.catalog import Model

#: The reCAPTCHA v2 key of the "Security Verification" checkbox (reported 2026).
V2_SITE_KEY = "6Le3_cYsAAAAAGwWOK2RLDgNI15Bh8C0yLBOL1yL"

# Row 6 of the captured RSC payload up to the catalog (captures/rsc-line-with-initialModels.txt).
_CATALOG_ROW_HEAD = (
    '6:["$","$L15",null,{"initialState":"$undefined","data-sentry-element":"EvaluationStoreProvider",'
    '"data-sentry-component":"LayoutWithSidebar","data-sentry-source-file":"layout.tsx",'
    '"children":["$","$L16",null,{"initialModels":'
)
_HTML_SAFE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_string(text: str) -> str:
    """A JSON string literal that is safe inside <script>, as Next.js writes it."""
    literal = orjson.dumps(text).decode()
    return "".join(_HTML_SAFE.get(char, char) for char in literal)


def rsc_rows(catalog: list[Any] | None, initial_model_id: str | None, build_id: str) -> list[str]:
    """The page's React Server Components rows (each ends with a newline).

    Without a catalog, row 6 holds `"$undefined"` where the models were, as the 2026 site does.
    """
    undefined = '"$undefined"'
    models = undefined if catalog is None else orjson.dumps(catalog).decode()
    initial = undefined if catalog is None else orjson.dumps(initial_model_id).decode()
    return [
        f'0:{{"P":null,"b":"{build_id}","p":"","c":["",""],"i":false}}\n',
        '15:I[52341,["3185","static/chunks/3185.js"],"EvaluationStoreProvider"]\n',
        f'{_CATALOG_ROW_HEAD}{models},"initialModelAId":{initial},"children":"$L17"}}]}}]\n',
    ]


def rsc_scripts(rows: Sequence[str], chunk_chars: int) -> str:
    """`self.__next_f.push([1,"…"])` scripts: one per row, or the text cut every `chunk_chars`."""
    text = "".join(rows)
    pieces = (
        rows
        if chunk_chars == 0
        else [text[start : start + chunk_chars] for start in range(0, len(text), chunk_chars)]
    )
    pushes = "".join(
        f"<script>self.__next_f.push([1,{script_string(piece)}])</script>" for piece in pieces
    )
    return f"<script>(self.__next_f=self.__next_f||[]).push([0])</script>{pushes}"


def _options(models: Iterable[Model], selected: str | None) -> str:
    return "".join(
        f'<option value="{html.escape(model.id)}" data-modality="{model.modality}"'
        f"{' selected' if model.public_name == selected else ''}>"
        f"{html.escape(model.public_name)}</option>"
        for model in models
        if model.kind != "video"
    )


def chat_page(
    *,
    models: Sequence[Model],
    rsc_catalog: list[Any] | None,
    initial_model_id: str | None,
    build_id: str,
    site_key: str,
    scripts: Iterable[str],
    username: str | None,
    mode: str,
    selected: str | None = None,
    thread: Sequence[str] = (),
    rsc_chunk_chars: int = 0,
    security_check: str | None = None,
) -> str:
    """The chat page: UI (textarea = ready marker), user, RSC catalog, reCAPTCHA and JS chunks.

    `models` fill the picker (`selected` is preselected by public name); `mode` is what the UI
    creates a chat in; `security_check`, a flagged account's nonce, adds the verification modal.
    """
    rsc = rsc_scripts(rsc_rows(rsc_catalog, initial_model_id, build_id), rsc_chunk_chars)
    who = (
        f'<span data-testid="username">{html.escape(username)}</span>'
        if username
        else '<a href="/login" data-testid="login">Log in</a>'
    )
    turns = "".join(f'<p class="turn">{html.escape(text)}</p>' for text in thread)
    chunks = "".join(f'<script src="{src}" async></script>' for src in scripts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>LMArena</title>'
        f'<script src="/recaptcha/enterprise.js?render={site_key}" async></script>{chunks}'
        f'</head><body><main id="arena" data-sitekey="{site_key}" data-mode="{mode}">'
        f"<header><b>LMArena</b> (fake) · {who}</header>"
        f'<section id="thread">{turns}</section>'
        f'<select name="model">{_options(models, selected)}</select>'
        '<textarea name="message" placeholder="Ask anything…" rows="4" cols="80"></textarea>'
        '<button id="send" type="button">Send</button>'
        '<div id="answer"></div>'
        f"{security_modal(security_check) if security_check else ''}</main>{rsc}</body></html>"
    )


def security_modal(nonce: str) -> str:
    """The "Security Verification" modal over a flagged account's page: a reCAPTCHA v2 checkbox.

    Only a trusted click (a person's, or WebDriver's) posts the nonce; the v2 token it gets back
    lands in `textarea[name=g-recaptcha-response]`, as Google's widget leaves it, for the next call.
    """
    return (
        "<style>#security-verification{position:fixed;inset:0;display:flex;align-items:center;"
        "justify-content:center;background:rgba(0,0,0,.6)}"
        "#security-verification[hidden]{display:none}"
        "#security-verification>div{background:#fff;padding:24px;border-radius:8px}</style>"
        '<div id="security-verification" role="dialog" aria-modal="true" data-state="open"><div>'
        "<h2>Security Verification</h2>"
        "<p>We detected unusual activity. Please verify that you are human to continue.</p>"
        f'<div class="g-recaptcha" data-sitekey="{V2_SITE_KEY}">'
        '<label><input type="checkbox" id="recaptcha-anchor"> I\'m not a robot</label>'
        '<textarea id="g-recaptcha-response" name="g-recaptcha-response" hidden></textarea>'
        "</div></div></div>"
        "<script>(() => {"
        "const modal = document.getElementById('security-verification');"
        "const box = document.getElementById('recaptcha-anchor');"
        "box.addEventListener('click', (event) => {"
        "if (!event.isTrusted) { event.preventDefault(); return; }"
        "modal.dataset.state = 'verifying';"
        f"fetch('/recaptcha/api2/userverify?k={V2_SITE_KEY}', {{method: 'POST',"
        "headers: {'content-type': 'application/json'},"
        f"body: JSON.stringify({{nonce: {script_string(nonce)}}})}})"
        ".then((r) => r.ok ? r.json() : Promise.reject(r.status))"
        ".then((answer) => {"
        "document.getElementById('g-recaptcha-response').value = answer.token;"
        "modal.dataset.state = 'passed'; modal.hidden = true; })"
        ".catch(() => { modal.dataset.state = 'open'; box.checked = false; });"
        "});})();</script>"
    )


def not_found_page() -> str:
    """The 2026 site's answer to an unknown path (with status 200)."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Page not found · LMArena</title></head><body><main>"
        "<h1>404</h1><h2>This page could not be found.</h2>"
        '<a href="/">Back to LMArena</a></main></body></html>'
    )


def login_page(error: str | None = None) -> str:
    notice = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Log in · LMArena</title>'
        f"</head><body><h1>Log in</h1>{notice}"
        '<form method="post" action="/login">'
        '<label>Username <input name="username" autocomplete="username"></label>'
        '<label>Password <input name="password" type="password" autocomplete="current-password">'
        '</label><button type="submit">Log in</button></form></body></html>'
    )


def challenge_page(nonce: str) -> str:
    """Cloudflare's interstitial; only a real (trusted) click on the checkbox passes it."""
    return (
        '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
        '<meta charset="UTF-8"></head><body><div class="main-wrapper">'
        "<h1>arena.ai</h1><p>Verify you are human by completing the action below.</p>"
        '<label><input type="checkbox" id="cf-checkbox"> Verify you are human</label>'
        "<p>arena.ai needs to review the security of your connection before proceeding.</p></div>"
        f"<script>window._cf_chl_opt={{cType:'managed',cNounce:{script_string(nonce)}}};"
        "document.getElementById('cf-checkbox').addEventListener('click',function(event){"
        "if(!event.isTrusted)return;"
        "fetch('/cdn-cgi/challenge-platform/verify',{method:'POST',"
        "headers:{'content-type':'application/json'},"
        "body:JSON.stringify({nonce:window._cf_chl_opt.cNounce})})"
        ".then(function(r){if(r.ok)location.reload();});});</script></body></html>"
    )


def server_reference_chunk(actions: Mapping[str, str]) -> str:
    """A webpack chunk declaring the server actions (`id -> name`) the way Next.js minifies them."""
    references = ",".join(
        f'a{index}=(0,n.createServerReference)("{action_id}",n.callServer,void 0,'
        f'n.findSourceMapURL,"{name}")'
        for index, (action_id, name) in enumerate(actions.items())
    )
    return (
        '"use strict";(self.webpackChunk_N_E=self.webpackChunk_N_E||[]).push([[3185],'
        f"{{52341:(e,t,r)=>{{var n=r(57312);let {references};}}}}]);"
    )


RECAPTCHA_JS = """(() => {
  // Stand-in for Google's reCAPTCHA Enterprise: same calls, tokens minted by the fake.
  const rendered = new URL(document.currentScript.src).searchParams.get("render");
  const queue = [];
  let loaded = false;
  const enterprise = {
    ready(callback) {
      if (loaded) setTimeout(callback, 0);
      else queue.push(callback);
    },
    async execute(siteKey, options) {
      if (siteKey !== rendered) throw new Error(`Invalid site key or not loaded in api.js: ${siteKey}`);
      const response = await fetch(`/recaptcha/enterprise/reload?k=${encodeURIComponent(siteKey)}`, {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({action: (options || {}).action || ""}),
      });
      if (!response.ok) throw new Error(`reCAPTCHA reload failed: ${response.status}`);
      return (await response.json()).token;
    },
  };
  window.grecaptcha = Object.assign(window.grecaptcha || {}, {enterprise});
  setTimeout(() => {
    loaded = true;
    queue.splice(0).forEach((callback) => callback());
  }, 0);
})();
"""

UI_JS = """(() => {
  // A plain stand-in for the site's React UI: enough for a person watching through noVNC.
  const $ = (selector) => document.querySelector(selector);
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  function uuidv7() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    let ms = Date.now();
    for (let i = 5; i >= 0; i--) { b[i] = ms % 256; ms = Math.floor(ms / 256); }
    b[6] = 0x70 | (b[6] & 0x0f);
    b[8] = 0x80 | (b[8] & 0x3f);
    const h = hex(b);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  let sessionId = location.pathname.startsWith("/c/") ? location.pathname.slice(3) : null;
  function show(out, row) {
    const colon = row.indexOf(":");
    const code = row.slice(1, colon);
    const value = JSON.parse(row.slice(colon + 1));
    if (code === "0") {
      out.append(value);
    } else if (code === "2") {
      for (const part of value) {
        if (part.type !== "image") continue;
        const img = document.createElement("img");
        img.src = part.image;
        out.append(img);
      }
    } else if (code === "3") {
      out.append(`[error: ${value}]`);
    }
  }
  async function send() {
    const out = $("#answer");
    const option = $("select[name=model]").selectedOptions[0];
    const text = $("textarea[name=message]").value;
    const token = await grecaptcha.enterprise.execute($("#arena").dataset.sitekey, {action: "chat_submit"});
    const passed = $("textarea[name=g-recaptcha-response]");
    let path;
    const body = {};
    if (sessionId) {
      path = `/nextjs-api/stream/post-to-evaluation/${sessionId}`;
      body.id = sessionId;
    } else {
      sessionId = uuidv7();
      path = "/nextjs-api/stream/create-evaluation";
      Object.assign(body, {id: sessionId, mode: $("#arena").dataset.mode});
    }
    Object.assign(body, {
      modelAId: option.value, userMessageId: uuidv7(), modelAMessageId: uuidv7(),
      userMessage: {content: text, experimental_attachments: []},
      modality: option.dataset.modality, recaptchaV3Token: token,
    });
    if (passed && passed.value) {
      // The verification modal was passed: the v2 token rides on the next call, once.
      body.recaptchaV2Token = passed.value;
      passed.value = "";
    }
    out.textContent = "";
    delete out.dataset.done;
    const response = await fetch(path, {
      method: "POST", body: JSON.stringify(body),
      headers: {"content-type": "text/plain;charset=UTF-8"}, credentials: "include",
    });
    if (!response.ok) {
      out.textContent = `Error ${response.status}: ${await response.text()}`;
      return;
    }
    history.replaceState(null, "", `/c/${sessionId}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let pending = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      pending += value;
      const rows = pending.split("\\n");
      pending = rows.pop();
      for (const row of rows) show(out, row);
    }
    out.dataset.done = "true";
  }
  const start = () => $("#send").addEventListener("click", () => {
    send().catch((error) => { $("#answer").textContent = String(error); });
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
"""


def error_xml(code: str, message: str) -> str:
    """An S3-style error body, as R2 answers."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{html.escape(message)}</Message></Error>"
    )


def rsc_action_answer(build_id: str, result: Any) -> bytes:
    """A server action's `text/x-component` answer: row 0 points at row 1, which holds the result."""
    return f'0:{{"a":"$@1","f":"","b":"{build_id}"}}\n1:'.encode() + orjson.dumps(result) + b"\n"
