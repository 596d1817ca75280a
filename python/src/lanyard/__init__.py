"""Lanyard for Python: credentials for agents, and a verifier for resource servers.

Agent side: :class:`CredentialSource` / :class:`AsyncCredentialSource` (one per lane),
:class:`RefreshTokenChain`, :class:`AwsIam`, :class:`LanyardAuth` (``httpx.Auth``) and
:mod:`lanyard.aws` (botocore credentials for the ``sts`` kind).
Resource-server side: :class:`Verifier` / :class:`AsyncVerifier`, :class:`Revocations`, and
:mod:`lanyard.asgi` (FastAPI dependency, ASGI middleware).
"""

from .credentials import AwsSessionCredentials, Credential, CredentialRequest
from .errors import (
    IssuanceError,
    IssuanceErrorCode,
    LanyardError,
    OriginNotAllowedError,
    RevokedTarget,
    VerificationError,
    VerificationErrorCode,
)
from .httpx_auth import LanyardAuth
from .iam import AwsIam
from .jwks import JwksCache
from .refresh_tokens import AsyncRefreshTokenChain, RefreshTokenChain
from .revocations import RevocationFollower
from .source import AsyncCredentialSource, AuthorityLoss, CredentialSource, SourceState
from .verifier import AsyncVerifier, LanyardClaims, Revocations, Verifier

__version__ = "0.1.0"

__all__ = [
    "AsyncCredentialSource",
    "AsyncRefreshTokenChain",
    "AsyncVerifier",
    "AuthorityLoss",
    "AwsIam",
    "AwsSessionCredentials",
    "Credential",
    "CredentialRequest",
    "CredentialSource",
    "IssuanceError",
    "IssuanceErrorCode",
    "JwksCache",
    "LanyardAuth",
    "LanyardClaims",
    "LanyardError",
    "OriginNotAllowedError",
    "RefreshTokenChain",
    "RevocationFollower",
    "RevokedTarget",
    "Revocations",
    "SourceState",
    "VerificationError",
    "VerificationErrorCode",
    "Verifier",
]
