/**
 * Usage units (tokens, cents…) read from an upstream answer, where the provider's config says
 * how: a response header, or a dot path into a JSON body. The body is streamed to the agent
 * untouched; a copy of at most `MAX_JSON_BYTES` is kept to read the units at its end.
 */
import type { IncomingHttpHeaders } from 'node:http';

export const MAX_JSON_BYTES = 1024 * 1024;

export function unitsFromHeaders(headers: IncomingHttpHeaders, name: string): number | undefined {
  const raw = headers[name.toLowerCase()];
  return toUnits(Array.isArray(raw) ? raw[0] : raw);
}

export class UnitsCollector {
  readonly #path: readonly string[];
  readonly #chunks: Buffer[] = [];
  #size = 0;
  #enabled: boolean;

  constructor(path: string, contentType: string | undefined) {
    this.#path = path.split('.');
    // Only a JSON answer has a body to read units from (a stream of events has none).
    this.#enabled = /^application\/([\w.+-]*\+)?json\b/i.test(contentType ?? '');
  }

  push(chunk: Buffer): void {
    if (!this.#enabled) return;
    this.#size += chunk.length;
    if (this.#size > MAX_JSON_BYTES) {
      this.#enabled = false;
      this.#chunks.length = 0;
      return;
    }
    this.#chunks.push(chunk);
  }

  units(): number | undefined {
    if (!this.#enabled) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(Buffer.concat(this.#chunks).toString('utf8'));
    } catch {
      return undefined;
    }
    for (const segment of this.#path) {
      if (typeof value !== 'object' || value === null || !Object.hasOwn(value, segment)) return undefined;
      value = (value as Record<string, unknown>)[segment];
    }
    return toUnits(value);
  }
}

function toUnits(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}
