/**
 * Masks the upstream key in an answer body as it streams. Some upstreams quote the request
 * back: a 404 that names the URL (with `?api_key=…` for a query-keyed provider), an echo
 * endpoint, a debug field. The agent must never receive the key, so every occurrence of it
 * (as sent, or percent-encoded in either hex case, or with `+` for a space) is replaced by as
 * many `*`: the body keeps its length, so a declared `content-length` stays true.
 *
 * Streaming is kept: a chunk is passed on at once, except a tail that could be the start of
 * the key. Those few bytes wait for the next chunk. A key is random, so in practice that tail is
 * empty, and an event stream's `\n\n` is never held.
 *
 * A compressed body cannot be read this way. The broker asks upstreams for `identity` encoding
 * where the key travels in the URL, and passes a compressed answer through unread; the residual
 * risk is in docs/broker.md.
 */

const MASK = 0x2a; // '*'

export class SecretRedactor {
  readonly #forms: readonly Buffer[];
  #held: Buffer = Buffer.alloc(0);

  constructor(secret: string) {
    const encoded = encodeURIComponent(secret);
    const variants = new Set([secret, encoded, encoded.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()), encoded.replace(/%20/g, '+')]);
    this.#forms = [...variants].filter((v) => v !== '').map((v) => Buffer.from(v, 'utf8'));
  }

  /** The part of `chunk` (after what was held) that can be passed on now, with the key masked. */
  push(chunk: Uint8Array): Buffer {
    const buffer = this.#held.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#held, chunk]);
    this.#mask(buffer);
    const hold = this.#partialTail(buffer);
    this.#held = Buffer.from(buffer.subarray(buffer.length - hold));
    return buffer.subarray(0, buffer.length - hold);
  }

  /** What is still held at the end of the body: no longer a possible start of the key. */
  end(): Buffer {
    const rest = this.#held;
    this.#held = Buffer.alloc(0);
    return rest;
  }

  #mask(buffer: Buffer): void {
    for (const form of this.#forms) {
      for (let at = buffer.indexOf(form); at !== -1; at = buffer.indexOf(form, at + form.length)) {
        buffer.fill(MASK, at, at + form.length);
      }
    }
  }

  /** The longest tail of `buffer` that is a proper prefix of some form of the key. */
  #partialTail(buffer: Buffer): number {
    let longest = 0;
    for (const form of this.#forms) {
      for (let k = Math.min(form.length - 1, buffer.length); k > longest; k -= 1) {
        if (buffer.compare(form, 0, k, buffer.length - k, buffer.length) === 0) {
          longest = k;
          break;
        }
      }
    }
    return longest;
  }
}
