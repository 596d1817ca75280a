"""A minimal ``text/event-stream`` parser (WHATWG HTML §9.2.6, as the TypeScript SDK's): lines
end in CRLF, LF or CR; ``:`` starts a comment (keep-alive); ``data`` lines are joined with
``\\n``; a blank line dispatches; an ``id`` containing NUL is ignored; the last id persists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str


class SseParser:
    def __init__(self, on_event: Callable[[SseEvent], None], last_event_id: str | None = None) -> None:
        self._on_event = on_event
        self.last_event_id = last_event_id
        self._buffer = ""
        self._event = ""
        self._data: list[str] = []
        # A CR at the very end of a chunk may be the first half of a CRLF split across chunks.
        self._pending_cr = False

    def _line(self, text: str) -> None:
        if text == "":
            if self._data:
                self._on_event(SseEvent(self.last_event_id, self._event or "message", "\n".join(self._data)))
            self._event = ""
            self._data = []
            return
        if text.startswith(":"):
            return
        field, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self.last_event_id = value
        # `retry` and unknown fields are ignored: reconnection timing is ours.

    def push(self, text: str) -> None:
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        buffer = self._buffer + text
        start = 0
        i = 0
        while i < len(buffer):
            char = buffer[i]
            if char in "\r\n":
                self._line(buffer[start:i])
                if char == "\r":
                    if i + 1 == len(buffer):
                        self._pending_cr = True
                    elif buffer[i + 1] == "\n":
                        i += 1
                start = i + 1
            i += 1
        self._buffer = buffer[start:]
