/** The signing port: KMS on AWS, a P-256 key file on the embedded default. */

/** A JWS signer. Signatures are JWS ES256: the 64-byte r‖s (RFC 7518 §3.4), never DER. */
export interface Signer {
  /** The key id that signs now. */
  activeKid(): Promise<string>;
  sign(kid: string, signingInput: Uint8Array): Promise<Uint8Array>;
  /** Every published public key (staged, active, retired-but-still-needed), as JWKs with `kid`, `alg`, `use`. */
  publicJwks(): Promise<PublicJwk[]>;
}

export interface PublicJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
  readonly kid: string;
  readonly alg: 'ES256';
  readonly use: 'sig';
}

