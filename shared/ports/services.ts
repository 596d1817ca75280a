/**
 * What every handler needs, built once per process (a Lambda container or the local server)
 * by a composition root: `shared/bootstrap/local/runtime.ts` or `shared/bootstrap/aws/runtime.ts`.
 */
import type { DecisionLog } from '../audit/decision-log.ts';
import type { Log } from './log.ts';
import type { PolicyView } from '../policy/policy-view.ts';
import type { RevocationIndex } from '../revocation/revocation-index.ts';
import type { Clock, EventStream, IssuanceQuota, SecretVault, SessionIssuer, SessionRevoker, Signer, Store } from './index.ts';

export interface IssuerConfig {
  /** The `iss` of every token and the base of the metadata URLs. */
  readonly issuer: string;
  /** How callers authenticate: local API keys (embedded default) or the API Gateway IAM authorizer. */
  readonly authMode: 'apiKey' | 'iam';
}

export interface IssuerServices {
  readonly config: IssuerConfig;
  readonly store: Store;
  readonly policy: PolicyView;
  /** Live revocations for introspection. */
  readonly revocations: RevocationIndex;
  readonly signer: Signer;
  readonly decisions: DecisionLog;
  readonly quota: IssuanceQuota;
  readonly clock: Clock;
  readonly log: Log;
  readonly sessions?: SessionIssuer;
  /**
   * STS sessions cannot be deleted: a revocation attaches a deny to each tool role it reaches,
   * for the sessions it covers issued at or before the cut-off (docs/domain.md#credentials). Present where the
   * process may write tool roles (AWS: `StsSessionRevoker`, in the admin function only).
   */
  readonly stsRevoker?: SessionRevoker;
  /** Upstream secrets of the broker's providers (Secrets Manager on AWS, an encrypted file locally). */
  readonly vault?: SecretVault;
  /** The embedded default's event bus (the SSE stream reads it); on AWS events go through EventBridge. */
  readonly events?: EventStream;
}
