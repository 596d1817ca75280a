/**
 * Lanyard SDK: verify Lanyard access tokens in a resource server, and (the agent side) keep a
 * valid credential per lane without ever noticing a rotation.
 *
 * Self-contained on purpose (imports nothing from the issuer's `shared/`): this is what other
 * programs import. This root entry is the verifier and the agent side together; the middy
 * middleware and the AWS SDK credential provider are only under `@lanyard/sdk/middy` and
 * `@lanyard/sdk/aws`, so nothing here pulls in Lambda or AWS SDK types.
 */
export * from './verifier-entry.ts';
export * from './agent-entry.ts';
