/**
 * The logging port: Powertools Logger on AWS, JSON lines on the embedded default. Nothing
 * secret is ever passed to it: no token, key or secret, only ids and codes.
 */
export interface Log {
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

export const silentLog: Log = { info: () => {}, warn: () => {}, error: () => {} };

/** One JSON object per line on stderr, for the local server. */
export function jsonLinesLog(stream: NodeJS.WritableStream = process.stderr): Log {
  const write = (level: string, message: string, extra?: Record<string, unknown>) =>
    stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, message, ...extra })}\n`);
  return {
    info: (m, e) => write('info', m, e),
    warn: (m, e) => write('warn', m, e),
    error: (m, e) => write('error', m, e),
  };
}

/** The parts of an error safe to log: name, code and message of it and its causes. Never a stack on the wire. */
export function describeError(error: unknown, depth = 0): Record<string, unknown> {
  if (!(error instanceof Error)) return { value: String(error) };
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === 'string' && { code }),
    ...(error.cause !== undefined && depth < 3 && { cause: describeError(error.cause, depth + 1) }),
  };
}
