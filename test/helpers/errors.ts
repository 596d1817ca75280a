/** Awaits a promise that must reject with a LanyardError (or the error class given), and returns that error for its code and context. */
import { expect } from 'vitest';
import { LanyardError } from '../../shared/domain/errors.ts';

export async function rejection<E extends Error = LanyardError>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E = LanyardError as unknown as abstract new (...args: never[]) => E,
): Promise<E> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(type);
  return error as E;
}
