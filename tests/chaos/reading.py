"""A streamed chat completion read as a client reads it, with the times its frames came at."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Reading:
    """What one client got of one streamed answer."""

    status: int = 0
    text: str = ""
    ids: list[str] = field(default_factory=list)
    #: monotonic times at which content came
    times: list[float] = field(default_factory=list)
    error: dict[str, Any] | None = None
    done: bool = False
    job_id: str | None = None

    @property
    def stall(self) -> float:
        """The longest silence between two pieces of content."""
        return max((b - a for a, b in zip(self.times, self.times[1:], strict=False)), default=0.0)

    def add(self, frame: bytes) -> None:
        for line in frame.split(b"\n"):
            if line.startswith(b"id: "):
                self.ids.append(line[4:].decode())
            elif line.startswith(b"data: "):
                self._data(line[6:])

    def _data(self, data: bytes) -> None:
        if data == b"[DONE]":
            self.done = True
            return
        chunk = orjson.loads(data)
        if "error" in chunk:
            self.error = chunk["error"]
            return
        self.job_id = chunk["id"].removeprefix("chatcmpl-")
        for choice in chunk.get("choices", []):
            content = choice["delta"].get("content")
            if content:
                self.text += content
                self.times.append(time.monotonic())


def read_stream(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    reading: Reading | None = None,
    until: Callable[[Reading], bool] | None = None,
    **kwargs: Any,
) -> Reading:
    """Read a stream into `reading` (a new one if None) to its end, or until `until` holds."""
    reading = reading or Reading()
    with client.stream(method, url, **kwargs) as response:
        reading.status = response.status_code
        if response.status_code != 200:
            response.read()
            reading.error = response.json().get("error")
            return reading
        buffer = b""
        for part in response.iter_raw():
            buffer += part
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                reading.add(frame)
            if until is not None and until(reading):
                break
    return reading


def chat(model: str, prompt: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True}
