/** Wraps a real store so that chosen methods fail the way a dependency would; the rest behave normally. */
import type { Store } from '../../shared/ports/index.ts';

export function storeWithFaults(store: Store, faults: Partial<Record<keyof Store, Error>>): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const fault = faults[property as keyof Store];
      if (fault) return () => Promise.reject(fault);
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * Wraps a real store so that the next call of each chosen method goes through (its write
 * commits) and then fails, as if the process died before it could answer; later calls behave
 * normally.
 */
export function storeFailingAfterCommit(store: Store, faults: Partial<Record<keyof Store, Error>>): Store {
  const pending = new Map(Object.entries(faults));
  return new Proxy(store, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        const fault = pending.get(property as string);
        pending.delete(property as string);
        const result = await method(...args);
        if (fault) throw fault;
        return result;
      };
    },
  });
}
