/**
 * `ANY /v1/proxy/{provider}/{path+}` on AWS (issue 6): the credential broker behind its own
 * function URL (`authType: NONE`, `invokeMode: RESPONSE_STREAM`). No IAM and no gateway in
 * front: the agent's Lanyard JWT is the authentication, and the broker verifies it with the
 * issuer's public keys. Thin on purpose: the checks live in `shared/broker/service.ts`, the
 * function URL plumbing in `shared/adapters/aws/broker-stream.ts`.
 */
import { onAwsStreaming, streamifyResponse } from '../shared/adapters/aws/broker-stream.ts';
import { createBroker } from '../shared/broker/service.ts';

export const handler = streamifyResponse(onAwsStreaming((runtime) => createBroker(runtime)));
