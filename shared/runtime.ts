/**
 * What every handler needs, built once per process (a Lambda container or the local server)
 * by a composition root: `shared/adapters/local/runtime.ts` or `shared/adapters/aws/runtime.ts`.
 */
import type { DecisionLog } from './decision-log.ts';
import type { RevocationTarget } from './domain.ts';
import type { Log } from './log.ts';
import type { PolicyView } from './policy-view.ts';
import type { RevocationIndex } from './revocation-index.ts';
import type { Clock, SecretVault, SessionIssuer, Signer, Store } from './ports.ts';
import type { QuotaGate } from './quota.ts';
import type { LocalEventBus } from './adapters/local/event-bus.ts';

export interface IssuerConfig {
  /** The `iss` of every token and the base of the metadata URLs. */
  readonly issuer: string;
  /** How callers authenticate: local API keys (embedded default) or the API Gateway IAM authorizer. */
  readonly authMode: 'apiKey' | 'iam';
}

export interface IssuerRuntime {
  readonly config: IssuerConfig;
  readonly store: Store;
  readonly policy: PolicyView;
  /** Live revocations for introspection. */
  readonly revocations: RevocationIndex;
  readonly signer: Signer;
  readonly decisions: DecisionLog;
  readonly quota: QuotaGate;
  readonly clock: Clock;
  readonly log: Log;
  readonly sessions?: SessionIssuer;
  /**
   * STS sessions cannot be deleted: a revocation attaches a deny to each tool role it reaches,
   * for the sessions it covers issued at or before the cut-off (docs/domain.md#credentials). Present where the
   * process may write tool roles (AWS: `StsSessionRevoker`, in the admin function only).
   */
  readonly stsRevoker?: { revokeSessions(input: { readonly roleArn: string; readonly target: RevocationTarget; readonly cutoff: string }): Promise<unknown> };
  /** Upstream secrets of the broker's providers (Secrets Manager on AWS, an encrypted file locally). */
  readonly vault?: SecretVault;
  /** The embedded default's event bus (the SSE stream reads it); on AWS events go through EventBridge. */
  readonly events?: LocalEventBus;
}
