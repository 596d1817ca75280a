/** Wraps a real store so that chosen methods fail the way a dependency would; the rest behave normally. */
import type { Store } from '../../shared/ports.ts';

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
