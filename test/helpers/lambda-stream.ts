/**
 * A stand-in for the Lambda runtime's response stream, so the broker's function URL adapter is
 * tested without a runtime: `Sink` is a Writable that records what reached it, and `from` is
 * `awslambda.HttpResponseStream.from` as the runtime implements it, sending the prelude right
 * before the first write() and never on end() alone
 * (aws/aws-lambda-nodejs-runtime-interface-client, src/stream/http-response-stream.ts).
 */
import { Writable } from 'node:stream';
import type { HttpResponseStreamFrom, ResponsePrelude } from '../../shared/adapters/aws/broker-stream.ts';

/** What the fake response stream saw, in order: the prelude (once, on the first write), body chunks, the end. */
export class Sink extends Writable {
  readonly events: ({ prelude: ResponsePrelude } | { chunk: Buffer })[] = [];
  writes = 0;
  constructor(options: { highWaterMark?: number; failAfterWrites?: number; slow?: boolean } = {}) {
    super({
      highWaterMark: options.highWaterMark ?? 16 * 1024,
      write: (chunk: Buffer, _encoding, callback) => {
        this.writes += 1;
        if (options.failAfterWrites !== undefined && this.writes > options.failAfterWrites) {
          callback(new Error('socket hang up'));
          return;
        }
        if (chunk.length > 0) this.events.push({ chunk });
        // Asynchronous, like a socket: the writer must wait for 'drain' when the buffer is full.
        if (options.slow === true) setTimeout(callback, 1);
        else setImmediate(callback);
      },
    });
  }

  get prelude(): ResponsePrelude | undefined {
    const first = this.events[0];
    return first !== undefined && 'prelude' in first ? first.prelude : undefined;
  }

  get body(): Buffer {
    return Buffer.concat(this.events.flatMap((e) => ('chunk' in e ? [e.chunk] : [])));
  }
}

/** Like the runtime's HttpResponseStream.from: the prelude goes out right before the first write(), never on end() alone. */
export const from: HttpResponseStreamFrom = (stream, prelude) => {
  const sink = stream as Sink;
  const write = sink.write.bind(sink) as (chunk: unknown, ...rest: unknown[]) => boolean;
  let first = true;
  sink.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (first) {
      first = false;
      sink.events.push({ prelude: structuredClone(prelude) });
    }
    return write(chunk, ...rest);
  }) as typeof sink.write;
  return sink;
};
