"""What the issuer hands out: credentials, and what an agent asks for."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence, TypedDict

if TYPE_CHECKING:  # typing.NotRequired is Python 3.11+; annotations are not evaluated at run time.
    from typing_extensions import NotRequired


class TaskRef(TypedDict):
    id: str
    purpose: NotRequired[str]


class CredentialRequest(TypedDict):
    """The body of ``POST /v1/credentials`` (the issuer's field names)."""

    tool: str
    actions: Sequence[str]
    tenant: NotRequired[str]
    kind: NotRequired[Literal["jwt", "sts"]]
    ttlSeconds: NotRequired[int]
    task: NotRequired[TaskRef]
    onBehalfOf: NotRequired[str]


@dataclass(frozen=True)
class AwsSessionCredentials:
    """AWS session credentials of the ``sts`` kind."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime


@dataclass(frozen=True)
class Credential:
    """A credential as the issuer answers it (``201`` of ``POST /v1/credentials``).

    ``raw`` holds the whole answer (the issuer may add fields), without the refresh token.
    The token and the AWS secrets are left out of ``repr`` so a logged credential leaks nothing.
    """

    credential_id: str
    kind: Literal["jwt", "sts"]
    token: str | None = field(repr=False)
    aws: AwsSessionCredentials | None
    token_type: str
    identity: str
    lane: str
    tool: str
    tenant: str
    actions: tuple[str, ...]
    audience: str
    issued_at: datetime
    expires_at: datetime
    refresh_at: datetime
    quota_bucket: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _text(answer: Mapping[str, Any], name: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


def _instant(answer: Mapping[str, Any], name: str) -> datetime:
    value = _text(answer, name)
    # The issuer writes `2025-01-01T12:00:00.000Z`; fromisoformat reads a `Z` only from Python 3.11.
    instant = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    if instant.tzinfo is None:
        raise ValueError(f"{name} has no time zone")
    return instant


def parse_credential(answer: Mapping[str, Any]) -> Credential:
    """Reads an issuer answer (tolerant: unknown fields are kept in ``raw``); raises ``ValueError``."""
    kind = answer.get("kind")
    if kind not in ("jwt", "sts"):
        raise ValueError("kind is not jwt or sts")
    actions = answer.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise ValueError("actions is not a list of strings")
    token = answer.get("token")
    if token is not None and not isinstance(token, str):
        raise ValueError("token is not a string")
    aws = None
    if answer.get("aws") is not None:
        session = answer["aws"]
        if not isinstance(session, Mapping):
            raise ValueError("aws is not an object")
        aws = AwsSessionCredentials(
            access_key_id=_text(session, "accessKeyId"),
            secret_access_key=_text(session, "secretAccessKey"),
            session_token=_text(session, "sessionToken"),
            expiration=_instant(session, "expiration"),
        )
    credential_id = _text(answer, "credentialId")
    if credential_id == "":
        raise ValueError("credentialId is empty")
    quota_bucket = answer.get("quotaBucket")
    return Credential(
        credential_id=credential_id,
        kind=kind,
        token=token,
        aws=aws,
        token_type=_text(answer, "tokenType"),
        identity=_text(answer, "identity"),
        lane=_text(answer, "lane"),
        tool=_text(answer, "tool"),
        tenant=_text(answer, "tenant"),
        actions=tuple(actions),
        audience=_text(answer, "audience"),
        issued_at=_instant(answer, "issuedAt"),
        expires_at=_instant(answer, "expiresAt"),
        refresh_at=_instant(answer, "refreshAt"),
        quota_bucket=quota_bucket if isinstance(quota_bucket, str) else None,
        raw={key: value for key, value in answer.items() if key != "refreshToken"},
    )
