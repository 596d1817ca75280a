/**
 * Which declared action a request falls under. A provider maps each verb to method and path
 * patterns (`charges.read` → `GET /v1/charges*`); `*` matches any run of characters, and the
 * path it is matched against has already passed `parseProxyTarget` (no dot segments, also
 * none hidden behind `;parameters`, no encoded slashes or escapes) and, for a provider that does
 * not allow path parameters, holds no `;`, so a wildcard cannot be stretched across a `..`.
 */
import type { UpstreamConfig } from '../domain/model.ts';

export interface RouteMatch {
  /** `tool:verb`. */
  readonly action: string;
  /** The declared pattern that matched, as written (what the audit records). */
  readonly pattern: string;
}

const compiled = new WeakMap<UpstreamConfig, readonly CompiledRoute[]>();

interface CompiledRoute {
  readonly verb: string;
  readonly method: string;
  readonly pattern: string;
  readonly regex: RegExp;
}

/** Every action whose patterns cover `method path`, in declaration order. */
export function matchRoutes(tool: string, upstream: UpstreamConfig, method: string, path: string): RouteMatch[] {
  const matches: RouteMatch[] = [];
  const seen = new Set<string>();
  for (const route of compile(upstream)) {
    if (route.method !== method || !route.regex.test(path) || seen.has(route.verb)) continue;
    seen.add(route.verb);
    matches.push({ action: `${tool}:${route.verb}`, pattern: route.pattern });
  }
  return matches;
}

function compile(upstream: UpstreamConfig): readonly CompiledRoute[] {
  let routes = compiled.get(upstream);
  if (!routes) {
    routes = Object.entries(upstream.routes).flatMap(([verb, list]) =>
      list.map((route) => ({ verb, method: route.method.toUpperCase(), pattern: route.path, regex: patternRegex(route.path) })),
    );
    compiled.set(upstream, routes);
  }
  return routes;
}

export function patternRegex(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`);
}
