"""Lanyard on AWS: botocore / boto3 credentials backed by a credential source of the ``sts``
kind, and :class:`AwsIam` (SigV4 signing for an issuer behind API Gateway), re-exported here so
``from lanyard.aws import AwsIam`` works as well as ``from lanyard import AwsIam``.

botocore refreshes ``RefreshableCredentials`` once fewer than 15 minutes (its advisory window)
are left before ``expiry_time``. So the expiry handed to botocore is the source's own refresh
time plus that window, never later than the session's real end: botocore comes back when the
source wants to refresh, and never holds a session past its end. Between refreshes a call
costs nothing: the source answers from what it holds.

>>> session = botocore_session(reports_source)
>>> s3 = boto3.Session(botocore_session=session).client("s3")
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .iam import AwsIam
from .source import CredentialSource

if TYPE_CHECKING:
    import botocore.credentials
    import botocore.session

__all__ = ["AwsIam", "botocore_session", "refreshable_credentials"]

#: botocore's ``RefreshableCredentials._advisory_refresh_timeout``.
_BOTOCORE_ADVISORY_WINDOW = timedelta(minutes=15)


def _metadata(source: CredentialSource) -> dict[str, Any]:
    credential = source.get()
    if credential.aws is None:
        raise TypeError(f"lanyard.aws needs an sts credential; this source holds a {credential.kind} credential")
    session_end = credential.aws.expiration
    next_refresh = source.state().next_refresh
    expiry = session_end
    if next_refresh is not None:
        expiry = min(session_end, datetime.fromtimestamp(next_refresh, timezone.utc) + _BOTOCORE_ADVISORY_WINDOW)
    return {
        "access_key": credential.aws.access_key_id,
        "secret_key": credential.aws.secret_access_key,
        "token": credential.aws.session_token,
        "expiry_time": expiry.isoformat(),
    }


def refreshable_credentials(source: CredentialSource) -> botocore.credentials.RefreshableCredentials:
    """``RefreshableCredentials`` that ask ``source`` (an ``sts`` lane) for every refresh."""
    from botocore.credentials import RefreshableCredentials

    return RefreshableCredentials.create_from_metadata(metadata=_metadata(source), refresh_using=lambda: _metadata(source), method="lanyard")


def botocore_session(source: CredentialSource, *, region: str | None = None) -> botocore.session.Session:
    """A botocore session whose clients use the lane's STS sessions (wrap it in
    ``boto3.Session(botocore_session=…)`` for boto3)."""
    import botocore.session
    from botocore.credentials import CredentialProvider

    class LanyardProvider(CredentialProvider):  # type: ignore[misc]
        METHOD = "lanyard"
        CANONICAL_NAME = "lanyard"

        def load(self) -> botocore.credentials.RefreshableCredentials:
            return refreshable_credentials(source)

    session = botocore.session.Session()
    if region is not None:
        session.set_config_variable("region", region)
    resolver = session.get_component("credential_provider")
    resolver.insert_before(resolver.providers[0].METHOD, LanyardProvider())
    return session
