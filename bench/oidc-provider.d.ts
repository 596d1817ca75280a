// oidc-provider 9 ships no types (and @types/oidc-provider is not installed): only what
// bench/oidc-provider-process.ts uses. The configuration is passed through unchecked.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  class Provider {
    constructor(issuer: string, configuration?: Record<string, unknown>);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
  export default Provider;
}
