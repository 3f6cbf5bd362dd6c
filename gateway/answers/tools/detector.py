"""Finds tool calls in an answer while it streams, holding back as little text as it can.

Text streams on as it comes, except a tail that might be the start of a call: `<tool_c…` or a
code fence that might open one. As soon as that tail cannot be a call it is released. A call
block is read whole (its arguments must be checked before anything is sent), then handed on as
a call; a block that is not a valid call is released as the text it was. After the calls only
more calls may follow: any other text ends the answer there (the results come next turn, and a
model that goes on usually imagines them). Pure: no IO here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import regex

from gateway.answers.tools.calls import parse_block
from gateway.answers.tools.contract import CLOSE, OPEN
from gateway.answers.tools.definitions import ToolCall, ToolUse

#: A call's opening, with the code fence a model may put around it (at a line's start).
_OPENING = regex.compile(r"(?:(?:^|(?<=\n))[ \t]*```[\w+-]*[ \t]*\n\s*)?" + regex.escape(OPEN))
#: What may stand between two calls: whitespace and the fences around them.
_NEXT = regex.compile(r"(?:\s|```[\w+-]*)*" + regex.escape(OPEN))
_CLOSING_FENCE = regex.compile(r"\s*```\s*$")


@dataclass
class Found:
    """What one step of the detector lets out: text, then calls, in answer order."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)


class CallDetector:
    """Reads one answer's text for `<tool_call>` blocks (see the module's docstring)."""

    def __init__(self, use: ToolUse) -> None:
        self._use = use
        #: Text not yet let out: a possible opening (in text), a block (in a call), or what
        #: follows the calls.
        self._pending = ""
        #: The opening as the model wrote it, while in a call.
        self._opening: str | None = None
        self.calls: list[ToolCall] = []
        #: The answer is over for the client: its calls are made.
        self.ended = False

    def feed(self, text: str) -> Found:
        found = Found()
        if self.ended:
            return found
        self._pending += text
        while self._step(found):
            pass
        return found

    def close(self) -> Found:
        """The answer ended: whatever is held back is let out (a last block, if valid, as calls)."""
        found = Found()
        if self.ended:
            return found
        if self._opening is not None:
            block = _CLOSING_FENCE.sub("", self._pending)
            block = block.removesuffix(CLOSE).rstrip()
            for n in range(len(CLOSE) - 1, 0, -1):  # a closing tag cut short
                block = block.removesuffix(CLOSE[:n])
            self._block(block, self._opening + self._pending, found)
        elif not self.calls:
            found.text += self._pending
        self._pending = ""
        self.ended = True
        return found

    def _step(self, found: Found) -> bool:
        """Takes one step over what is pending; True while another may follow."""
        if self._opening is not None:  # inside a block: wait for its end
            end = self._pending.find(CLOSE)
            if end < 0:
                return False
            block, self._pending = self._pending[:end], self._pending[end + len(CLOSE) :]
            self._block(block, self._opening + block + CLOSE, found)
            return not self.ended
        if self.calls:  # after calls: only another call may follow
            after = _NEXT.match(self._pending, partial=True)
            if after is None:
                self.ended = True
                self._pending = ""
                return False
            if after.partial:
                return False
            self._opening, self._pending = after.group(), self._pending[after.end() :]
            return True
        opening = _OPENING.search(self._pending, partial=True)
        if opening is None:
            found.text += self._pending
            self._pending = ""
            return False
        found.text += self._pending[: opening.start()]
        if opening.partial:
            self._pending = self._pending[opening.start() :]
            return False
        self._opening, self._pending = opening.group(), self._pending[opening.end() :]
        return True

    def _block(self, block: str, raw: str, found: Found) -> None:
        """A whole block: its calls, or its text when it holds none."""
        self._opening = None
        calls = parse_block(block, self._use)
        if calls is None:
            if self.calls:  # a broken block after calls: the answer is over
                self.ended = True
                self._pending = ""
            else:
                found.text += raw
            return
        if not self._use.parallel:
            calls = calls[:1]
        found.calls += calls
        self.calls += calls
        if not self._use.parallel:
            self.ended = True
            self._pending = ""
