/** What the CLI sends to a running issuer: JSON over HTTP with a local API key. */

export class IssuerCallError extends Error {
  override readonly name = 'IssuerCallError';
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    super(error ? `${status} ${error.code ?? ''}: ${error.message ?? ''}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export interface IssuerClientOptions {
  readonly url: string;
  readonly key?: string;
  readonly fetch?: typeof fetch;
}

export async function callIssuer(options: IssuerClientOptions, method: string, path: string, body?: unknown): Promise<unknown> {
  const doFetch = options.fetch ?? fetch;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await doFetch(new URL(path, options.url), { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
  const text = await response.text();
  const parsed: unknown = text === '' ? undefined : JSON.parse(text);
  if (!response.ok) throw new IssuerCallError(response.status, parsed);
  return parsed;
}

export async function adminCommand(options: IssuerClientOptions, command: Record<string, unknown>): Promise<unknown> {
  const answer = (await callIssuer(options, 'POST', '/v1/admin', command)) as { result: unknown };
  return answer.result;
}
