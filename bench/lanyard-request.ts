/** The credential request every Lanyard section of the bench sends: the example policy's agent lane. */
export const CREDENTIAL_BODY = JSON.stringify({ tool: 'tickets', actions: ['tickets:read'], tenant: 'acme' });
