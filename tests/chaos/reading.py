"""A streamed chat completion read as a client reads it, with the times its frames came at."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
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


Until = Callable[[Reading], bool]


def read_stream(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    reading: Reading | None = None,
    until: Until | None = None,
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


class FirstContent:
    """An `until` for `read_stream` that never stops the read but marks when content first
    came: `wait()` returns its time."""

    def __init__(self) -> None:
        self._came = concurrent.futures.Future[float]()

    def __call__(self, reading: Reading) -> bool:
        if reading.times and not self._came.done():
            self._came.set_result(reading.times[0])
        return False

    def wait(self, timeout: float = 30.0) -> float:
        return self._came.result(timeout=timeout)


@contextlib.contextmanager
def asking(
    base_url: str,
    model: str,
    prompts: Sequence[str],
    *,
    until: Until | Sequence[Until] | None = None,
    timeout: float = 120.0,
) -> Iterator[list[concurrent.futures.Future[Reading]]]:
    """Stream one chat completion per prompt at once, each read in a thread of its own
    (`until`: one for all, or one per prompt)."""
    each = until if isinstance(until, Sequence) else [until] * len(prompts)
    with (
        httpx.Client(base_url=base_url, timeout=timeout) as client,
        concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool,
    ):
        yield [
            pool.submit(
                read_stream,
                client,
                "POST",
                "/v1/chat/completions",
                json=chat(model, prompt),
                until=stop,
            )
            for prompt, stop in zip(prompts, each, strict=True)
        ]
