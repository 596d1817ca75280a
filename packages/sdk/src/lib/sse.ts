/**
 * A minimal `text/event-stream` parser, following the WHATWG HTML "Server-sent events"
 * interpretation rules (§9.2.6): lines end in CRLF, LF or CR; a line starting with `:` is a
 * comment (keep-alive); `field: value` with at most one leading space stripped; `data`
 * lines are joined with `\n`; a blank line dispatches the event; an `id` containing NUL is
 * ignored; the last event id persists across events.
 */

export interface SseEvent {
  /** The last event id seen on this stream, if any (what `Last-Event-ID` should carry). */
  readonly id: string | undefined;
  /** The `event:` field, `message` by default. */
  readonly event: string;
  readonly data: string;
}

export interface SseParser {
  /** Feeds decoded text; calls `onEvent` for every complete event in it. */
  push(text: string): void;
}

export function createSseParser(onEvent: (event: SseEvent) => void, initialLastEventId?: string): SseParser {
  let buffer = '';
  let lastEventId = initialLastEventId;
  let eventType = '';
  let data: string[] = [];
  // A CR at the very end of a chunk may be the first half of a CRLF split across chunks.
  let pendingCr = false;

  function line(text: string): void {
    if (text === '') {
      if (data.length > 0) onEvent({ id: lastEventId, event: eventType || 'message', data: data.join('\n') });
      eventType = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        eventType = value;
        break;
      case 'data':
        data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) lastEventId = value;
        break;
      default:
        // `retry` and unknown fields are ignored: reconnection timing is ours.
        break;
    }
  }

  return {
    push(text: string): void {
      if (pendingCr && text.startsWith('\n')) text = text.slice(1);
      pendingCr = false;
      buffer += text;
      let start = 0;
      for (let i = 0; i < buffer.length; i += 1) {
        const char = buffer[i];
        if (char !== '\n' && char !== '\r') continue;
        line(buffer.slice(start, i));
        if (char === '\r') {
          if (i + 1 === buffer.length) pendingCr = true;
          else if (buffer[i + 1] === '\n') i += 1;
        }
        start = i + 1;
      }
      buffer = buffer.slice(start);
    },
  };
}
