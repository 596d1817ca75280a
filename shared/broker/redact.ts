/**
 * Finds and masks the upstream key in what an upstream answers. Some upstreams quote the
 * request back: a 404 that names the URL (with `?api_key=…` for a query-keyed provider), an
 * echo endpoint, a debug field, a redirect. The agent must never receive the key, however the
 * upstream wrote it, so the key is matched character by character, without regard to case
 * (a server that lowercases a URL, hex digits in either case), each character in any of the
 * spellings an encoder gives it:
 *
 * - as sent;
 * - percent-encoded, once (`%2F`) or twice (`%252F`): an encoder that leaves `/` or `:`
 *   alone and escapes the rest is matched as well as one that escapes all;
 * - a space as `+`, or `%2B` (a form-encoded key, percent-encoded once more);
 * - JSON-escaped: `\u002f` (what Go writes for `&`, `<`, `>`), `\/`, `\"`, `\\`.
 *
 * Any mix of these within one occurrence matches. What is still out of reach is in
 * docs/broker.md ("The key never comes back").
 *
 * In a body every byte of a match becomes `*`: the body keeps its length, so a declared
 * `content-length` stays true, whichever spelling was masked. Streaming is kept: a chunk is
 * passed on at once, except a tail that could be the start of the key. Those few bytes wait
 * for the next chunk. A key is random, so in practice that tail is empty, and an event
 * stream's `\n\n` is never held.
 *
 * A compressed body cannot be read this way: the broker asks every upstream for `identity`
 * and refuses an answer compressed anyway (headers.ts, broker.ts).
 */

const MASK = 0x2a; // '*'

/** One way a character of the key may be written back, in lower case. */
interface Spelling {
  readonly bytes: Buffer;
}

/** Where the key occurs in a buffer, and where a possible occurrence runs past its end. */
export interface SecretScan {
  /** `[start, end)` of each occurrence that starts before `cut`. */
  readonly spans: readonly (readonly [number, number])[];
  /** The first start of an occurrence the buffer cuts off; the buffer's length when there is none (or the scan is final). */
  readonly cut: number;
}

const hex = (byte: number): string => byte.toString(16).padStart(2, '0');
const JSON_SHORT: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '/': '\\/' };

function spellingsOf(char: string): Spelling[] {
  const utf8 = [...Buffer.from(char, 'utf8')];
  const utf16 = Array.from({ length: char.length }, (_, i) => char.charCodeAt(i));
  const spelling = (text: string): Spelling => ({ bytes: Buffer.from(text.replace(/[A-Z]/g, (c) => c.toLowerCase()), 'utf8') });
  const spellings = [
    spelling(char),
    spelling(utf8.map((b) => `%${hex(b)}`).join('')),
    spelling(utf8.map((b) => `%25${hex(b)}`).join('')),
    spelling(utf16.map((u) => `\\u${u.toString(16).padStart(4, '0')}`).join('')),
  ];
  if (char === ' ') spellings.push(spelling('+'), spelling('%2b'));
  const short = JSON_SHORT[char];
  if (short !== undefined) spellings.push(spelling(short));
  return spellings;
}

const lower = (byte: number): number => (byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte);

const MATCH = 0;
const MISMATCH = 1;
const CUT = 2;

/** A regular expression source for one spelling, its letters in either case. */
function spellingSource(spelling: Spelling): string {
  return Array.from(spelling.bytes.toString('latin1'), (c) => {
    if (c >= 'a' && c <= 'z') return `[${c}${c.toUpperCase()}]`;
    return c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }).join('');
}

export class SecretMatcher {
  readonly #chars: readonly (readonly Spelling[])[];
  /**
   * The first two characters in any spelling: the regular expression engine finds where an
   * occurrence may begin at native speed, and only there is the whole key followed.
   */
  readonly #candidates: RegExp;
  /** The longest the first two characters can be written: a candidate that close to the end may be cut off. */
  readonly #window: number;
  readonly #stack: number[] = [];
  #cutOff = false;

  constructor(secret: string) {
    this.#chars = Array.from(secret, spellingsOf);
    const lead = this.#chars.slice(0, 2);
    this.#candidates = new RegExp(lead.map((spellings) => `(?:${spellings.map(spellingSource).join('|')})`).join(''), 'g');
    this.#window = lead.reduce((sum, spellings) => sum + Math.max(...spellings.map((s) => s.bytes.length)), 0);
  }

  /**
   * Every occurrence of the key in `buffer`. Unless `final`, the scan stops at the first
   * start of an occurrence the buffer may cut off: from there on, the caller waits for more.
   */
  scan(buffer: Uint8Array, final: boolean): SecretScan {
    const spans: [number, number][] = [];
    if (this.#chars.length === 0) return { spans, cut: buffer.length };
    const text = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength).toString('latin1');
    // Where the buffer ends, every position is tried: an occurrence may be cut off in its first characters.
    const tail = Math.max(0, buffer.length - this.#window);
    const candidates = this.#candidates;
    candidates.lastIndex = 0;
    for (let start = 0; start < buffer.length; start += 1) {
      if (start < tail) {
        const found = candidates.exec(text);
        if (found === null || found.index >= tail) {
          start = tail - 1;
          continue;
        }
        start = found.index;
        // Occurrences may overlap: the next search starts one byte on.
        candidates.lastIndex = start + 1;
      }
      const end = this.#matchFrom(buffer, start, final);
      if (this.#cutOff) return { spans, cut: start };
      if (end !== -1) spans.push([start, end]);
    }
    return { spans, cut: buffer.length };
  }

  /**
   * The end of the longest occurrence starting at `start`, or -1; `#cutOff` says whether one
   * may continue past the buffer. Spellings of one character can be prefixes of each other
   * (`%` and `%25`), so where two fit, both are followed, and each (character, position) once.
   * A random key almost never branches: then this is one pass along the bytes.
   */
  #matchFrom(buffer: Uint8Array, start: number, final: boolean): number {
    const chars = this.#chars;
    const stack = this.#stack;
    const stride = buffer.length + 1;
    stack.length = 0;
    this.#cutOff = false;
    let seen: Set<number> | undefined;
    let end = -1;
    let index = 0;
    let at = start;
    for (;;) {
      while (index < chars.length) {
        const spellings = chars[index]!;
        let next = -1;
        for (let s = 0; s < spellings.length; s += 1) {
          const spelling = spellings[s]!;
          const compared = compare(buffer, at, spelling);
          if (compared === CUT && !final) {
            this.#cutOff = true;
            return -1;
          }
          if (compared !== MATCH) continue;
          const to = at + spelling.bytes.length;
          if (next === -1) {
            next = to;
            continue;
          }
          seen ??= new Set();
          const state = (index + 1) * stride + to;
          if (!seen.has(state)) {
            seen.add(state);
            stack.push(index + 1, to);
          }
        }
        if (next === -1) break;
        index += 1;
        at = next;
        if (seen) {
          const state = index * stride + at;
          if (seen.has(state)) break;
          seen.add(state);
        }
      }
      if (index === chars.length) end = Math.max(end, at);
      if (stack.length === 0) return end;
      at = stack.pop()!;
      index = stack.pop()!;
    }
  }
}

/** Whether `spelling` is at `at` in `buffer` (`MATCH`), is not, or may be but the buffer ends first (`CUT`). */
function compare(buffer: Uint8Array, at: number, spelling: Spelling): number {
  const bytes = spelling.bytes;
  const available = Math.min(bytes.length, buffer.length - at);
  for (let k = 0; k < available; k += 1) {
    if (lower(buffer[at + k]!) !== bytes[k]) return MISMATCH;
  }
  return available === bytes.length ? MATCH : CUT;
}

/** `text` with each run of occurrences of the key replaced by `replacement` (for header values, read as latin1 as node:http does). */
export function redactText(text: string, matcher: SecretMatcher, replacement: string): string {
  const bytes = Buffer.from(text, 'latin1');
  const merged: [number, number][] = [];
  for (const [start, end] of matcher.scan(bytes, true).spans) {
    const last = merged.at(-1);
    if (last && start <= last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  if (merged.length === 0) return text;
  let out = '';
  let from = 0;
  for (const [start, end] of merged) {
    out += bytes.toString('latin1', from, start) + replacement;
    from = end;
  }
  return out + bytes.toString('latin1', from);
}

/** Masks the key in a body as it streams (see the top of this file). */
export class SecretRedactor {
  readonly #matcher: SecretMatcher;
  /** The raw tail held back: it could be the start of the key. */
  #held: Buffer = Buffer.alloc(0);
  /** How many leading bytes of `#held` an occurrence found already covers. */
  #heldMasked = 0;

  constructor(secret: string) {
    this.#matcher = new SecretMatcher(secret);
  }

  /** The part of `chunk` (after what was held) that can be passed on now, with the key masked. */
  push(chunk: Uint8Array): Buffer {
    const buffer = this.#held.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#held, chunk]);
    const { spans, cut } = this.#matcher.scan(buffer, false);
    const prefix = this.#heldMasked;
    const covered = spans.reduce((most, [, end]) => Math.max(most, end), prefix);
    // The held tail stays as the upstream wrote it, so the next scan sees a whole occurrence;
    // what an occurrence found now covers of it is masked when it is passed on.
    this.#held = Buffer.from(buffer.subarray(cut));
    this.#heldMasked = Math.max(0, covered - cut);
    return mask(buffer.subarray(0, cut), spans, prefix);
  }

  /** What is still held at the end of the body: no longer a possible start of the key, or masked. */
  end(): Buffer {
    const rest = this.#held;
    const out = mask(rest, this.#matcher.scan(rest, true).spans, this.#heldMasked);
    this.#held = Buffer.alloc(0);
    this.#heldMasked = 0;
    return out;
  }
}

/** `buffer` with its first `prefix` bytes and every span (cut at its end) replaced by `*`. */
function mask(buffer: Buffer, spans: SecretScan['spans'], prefix: number): Buffer {
  buffer.fill(MASK, 0, Math.min(prefix, buffer.length));
  for (const [start, end] of spans) buffer.fill(MASK, start, Math.min(end, buffer.length));
  return buffer;
}
