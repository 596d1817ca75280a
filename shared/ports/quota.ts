/**
 * The quota step of the issuance decision (docs/domain.md#quotas): a grant names a quota
 * bucket, and an issuance takes one from it or is refused. Implemented in the core
 * (shared/issuance/quota.ts): `ProcessIssuanceQuota` counts issuances per process
 * (`rate_limited`), `BrokerIssuanceQuota` also refuses a bucket whose broker window is spent
 * (`quota_exhausted`).
 */
export interface IssuanceQuota {
  /** Takes one issuance from `bucket` or throws `rate_limited` / `quota_exhausted` with when to retry. */
  take(bucket: string, nowMs: number): Promise<void>;
}
