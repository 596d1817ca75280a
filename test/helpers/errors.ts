/** Awaits a promise that must reject with a LanyardError, and returns that error for its code and context. */
import { expect } from 'vitest';
import { LanyardError } from '../../shared/errors.ts';

export async function rejection(promise: Promise<unknown>): Promise<LanyardError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(LanyardError);
  return error as LanyardError;
}
