"""The arena's answer → the answer the client asked for. Pure: no IO here.

The arena streams text; what a client asked of it beyond a model and a prompt is applied here,
between the job's events and the API that renders them (`gateway.answers.fold`):
- tool calls, found in the text as it streams (`gateway.answers.tools.detector`), become
  `tool_call` events, and the answer's finish says `tool-calls`;
- a loop guard: a call that would be the third in a row of the same tool with the same
  arguments ends the answer with text saying so;
- `stop` sequences and `max_tokens`: the text is cut there and the answer finishes (`stop`,
  `length`); the caller stops reading, which stops the arena's answer;
- JSON mode: the text is held until the answer is complete and checked
  (`gateway.answers.json_mode`); when it is not what was asked, `retry` says why, once, and the
  caller feeds in the answer to a retry in the same arena thread.
`cut` tells the caller the client's answer ended before the arena's (stop reading: that stops
it); `shown` is what the client saw of the answer, as the conversation remembers it. Only side a is shaped: battles pass as they come.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.answers import json_mode
from gateway.answers.json_mode import JsonFormat
from gateway.answers.tokens import estimate_tokens
from gateway.answers.tools.definitions import ToolCall, ToolUse
from gateway.answers.tools.detector import CallDetector
from shared import events
from shared.events import Event

#: A call that would make this many identical calls in a row is not made.
LOOP_CALLS = 3


@dataclass(frozen=True, slots=True)
class Rules:
    """What a request asks of its answer beyond the model's text."""

    tools: ToolUse | None = None
    stop: Sequence[str] = ()
    max_tokens: int | None = None
    #: The conversation's calls so far, in order (the loop guard reads the last ones).
    earlier_calls: Sequence[ToolCall] = ()
    json: JsonFormat | None = None

    @property
    def shapes(self) -> bool:
        detects = self.tools is not None and self.tools.detects
        return bool(detects or self.stop or self.max_tokens or self.json)


class Shaper:
    """Shapes one answer's events by its `Rules` (see the module's docstring)."""

    def __init__(self, rules: Rules) -> None:
        self._rules = rules
        tools = rules.tools
        self._detector = CallDetector(tools) if tools is not None and tools.detects else None
        self._stops = [s for s in rules.stop if s]
        #: Text held back while it might be the start of a stop sequence.
        self._held = ""
        self._texts: list[str] = []
        self._chars = 0
        self.calls: list[ToolCall] = []
        #: Where the answer lives in the arena (the last `session` event).
        self.session: Event | None = None
        #: The client's answer is complete (nothing more of the arena's is shown).
        self.ended = False
        #: ... before the arena's answer was.
        self.cut = False
        #: JSON mode: the answer so far, held until it is checked.
        self._draft: str | None = "" if rules.json is not None else None
        #: Why the answer must be asked again (JSON mode), until `restart`.
        self.retry: str | None = None
        self._retried = False

    @property
    def shown(self) -> str:
        """The answer's text as the client got it."""
        return "".join(self._texts)

    def restart(self) -> None:
        """The events that follow are the retry's answer."""
        self.retry = None
        self._draft = ""
        self._chars = 0
        self._held = ""
        if self._detector is not None and self._rules.tools is not None:
            self._detector = CallDetector(self._rules.tools)

    def feed(self, batch: Iterable[Event]) -> list[Event]:
        out: list[Event] = []
        for event in batch:
            if self.retry is not None:
                break
            if self.ended:
                if event.get("side") == "b":
                    out.append(event)  # a battle's side b answers on after side a's end
                continue
            kind = event["t"]
            if kind == "session":
                self.session = event
            if event.get("side") != "a" or kind not in ("text", "finish"):
                out.append(event)
            elif kind == "text":
                self._text(event["text"], out)
            else:
                self._finish(event, out)
        return out

    def _text(self, text: str, out: list[Event]) -> None:
        if self._detector is None:
            self._visible(text, out)
            return
        found = self._detector.feed(text)
        self._visible(found.text, out)
        self._make(found.calls, out)
        if self._detector.ended and not self.ended:
            self._end("tool-calls", out)

    def _finish(self, event: Event, out: list[Event]) -> None:
        if self._detector is not None:
            found = self._detector.close()
            self._visible(found.text, out)
            self._make(found.calls, out)
        if self.ended:
            return
        self._release(self._held, out)
        self._held = ""
        if self.ended or self._checked(out):
            return
        reason = "tool-calls" if self.calls else event["reason"]
        out.append({**event, "reason": reason})
        self.ended = True

    def _checked(self, out: list[Event]) -> bool:
        """JSON mode: shows the checked answer; True when it is to be asked again instead."""
        fmt = self._rules.json
        if fmt is None or self._draft is None or self.calls:
            self._flush(out)
            return False
        clean, reason = json_mode.check(self._draft, fmt)
        if clean is None and not self._retried and self.session is not None:
            self.retry = json_mode.retry_message(reason)
            self._retried = True
            return True
        self._draft = clean if clean is not None else self._draft
        self._flush(out)
        return False

    def _flush(self, out: list[Event]) -> None:
        """Shows the JSON answer held back (as it is, when it was not checked)."""
        draft, self._draft = self._draft, None
        if draft:
            self._show(draft, out)

    def _make(self, calls: Sequence[ToolCall], out: list[Event]) -> None:
        for call in calls:
            if self.ended:
                return
            if self._loops(call):
                self._release(self._held, out)
                self._held = ""
                self._release(
                    f"\n\n(Stopped: this would have been call number {LOOP_CALLS} in a row of "
                    f"`{call.qualified}` with the same arguments.)",
                    out,
                    cut=False,
                )
                self._end("stop", out)
                return
            self._release(self._held, out)
            self._held = ""
            self._flush(out)
            self.calls.append(call)
            out.append(
                events.tool_call("a", call.id, call.name, dict(call.arguments), call.namespace)
            )

    def _loops(self, call: ToolCall) -> bool:
        recent = [*self._rules.earlier_calls, *self.calls][-(LOOP_CALLS - 1) :]
        return len(recent) == LOOP_CALLS - 1 and all(c.same_as(call) for c in recent)

    def _visible(self, text: str, out: list[Event]) -> None:
        """Text on its way to the client: stop sequences, then the length limit."""
        if not text or self.ended:
            return
        if not self._stops:
            self._release(text, out)
            return
        held = self._held + text
        hits = [(held.find(s), s) for s in self._stops if s in held]
        if hits:
            at, stop = min(hits)
            self._held = ""
            self._release(held[:at], out)
            if not self.ended:
                self._end("stop", out, stop_sequence=stop)
            return
        keep = max((_overlap(held, s) for s in self._stops), default=0)
        self._held = held[len(held) - keep :] if keep else ""
        self._release(held[: len(held) - keep], out)

    def _release(self, text: str, out: list[Event], *, cut: bool = True) -> None:
        if not text or self.ended:
            return
        limit = self._rules.max_tokens
        if cut and limit is not None and estimate_tokens(self._chars + len(text)) > limit:
            room = max(limit * 4 - self._chars, 0)
            self._chars += room
            self._show(text[:room], out)
            self._end("length", out)
            return
        self._chars += len(text)
        self._show(text, out)

    def _show(self, text: str, out: list[Event]) -> None:
        if self._draft is not None:  # JSON mode: held until the answer is checked
            self._draft += text
        elif text:
            self._texts.append(text)
            out.append(events.text("a", text))

    def _end(self, reason: str, out: list[Event], *, stop_sequence: str | None = None) -> None:
        self._flush(out)
        finish = events.finish("a", reason)
        if stop_sequence is not None:
            finish["stop_sequence"] = stop_sequence
        out.append(finish)
        self.ended = self.cut = True


def _overlap(text: str, stop: str) -> int:
    """The longest end of `text` that begins `stop` (what might become it)."""
    for n in range(min(len(stop) - 1, len(text)), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0
