"""IAM authentication to an issuer deployed on AWS: requests signed with SigV4 for
``execute-api`` (API Gateway's IAM authorization), with botocore's credential chain
(environment, shared config and SSO, container and instance roles …).

One signer serves both halves of the SDK: the agent's credential source (``aws=AwsIam(…)``)
and the verifier's revocation feed polling (``Revocations("poll", aws=AwsIam(…))``).

botocore is an optional dependency: ``pip install 'lanyard[aws]'``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import botocore.session

# https://<api id>.execute-api.<region>.amazonaws.com[.cn]/<stage>
_EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_SERVICE = re.compile(r"[a-z0-9-]+")
_MAX_REASON_CHARS = 200


class AwsSigningError(Exception):
    """The AWS credentials or the signature could not be obtained; nothing was sent."""


def region_of_api_url(url: str) -> str | None:
    """The region of an ``execute-api`` URL, or ``None`` for any other host."""
    match = _EXECUTE_API_HOST.fullmatch(urlsplit(url).hostname or "")
    return match.group(1) if match else None


def signable_url(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` as its query, encoded the way SigV4 canonicalises a query
    (RFC 3986 unreserved characters kept, everything else ``%XX``).

    botocore signs the query exactly as it appears in the URL, while API Gateway decodes it and
    encodes it again by SigV4's rules: a query sent in any other encoding (``:`` left bare, ``+``
    for a space) would be signed over one string and checked over another.
    """
    if not params:
        return url
    query = "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in params.items())
    return f"{url}?{query}"


def _reason(error: BaseException) -> str:
    # botocore's messages name the provider that failed (never a secret); kept short.
    text = str(error) or type(error).__name__
    return text[:_MAX_REASON_CHARS]


class AwsIam:
    """Signs requests with SigV4 instead of sending a bearer token.

    ``region`` defaults to the region in an ``execute-api`` URL, then the session's region
    (``AWS_DEFAULT_REGION`` or the profile's), then ``AWS_REGION``; ``session`` defaults to a new
    ``botocore.session.Session()`` (the default credential chain), asked again for credentials
    before every request so role credentials it refreshes are used as soon as it has them.
    A custom domain in front of API Gateway needs ``region`` (the URL does not name it).

    >>> from lanyard import AwsIam   # or: from lanyard.aws import AwsIam
    >>> AwsIam(region="eu-west-1")
    """

    def __init__(self, *, region: str | None = None, session: botocore.session.Session | None = None, service: str = "execute-api") -> None:
        if region is not None and (not isinstance(region, str) or not _REGION.fullmatch(region)):
            raise TypeError("aws.region must be an AWS region such as eu-west-1")
        if not isinstance(service, str) or not _SERVICE.fullmatch(service):
            raise TypeError("aws.service must be a signing name such as execute-api")
        try:
            import botocore.session as botocore_session
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise TypeError("IAM authentication needs botocore: pip install 'lanyard[aws]'") from error
        self._session = session if session is not None else botocore_session.Session()
        self._region = region
        self.service = service

    def region_for(self, url: str, option: str = "aws") -> str:
        """The region requests to ``url`` are signed for; raises ``TypeError`` naming ``option``
        when none is known (callers check it at construction, not on the first request)."""
        region = self._region or region_of_api_url(url) or self._session.get_config_variable("region") or os.environ.get("AWS_REGION")
        if not isinstance(region, str) or region == "":
            raise TypeError(f"{option}: no region to sign for (pass {option}=AwsIam(region=…) for a custom domain, use an execute-api URL, or set AWS_REGION)")
        return region

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes = b"") -> dict[str, str]:
        """The headers to send: ``headers`` plus ``Authorization``, ``X-Amz-Date`` and, for
        temporary credentials, ``X-Amz-Security-Token``. Raises :class:`AwsSigningError` when
        the credential chain has nothing to sign with (nothing must be sent then)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        region = self.region_for(url)
        try:
            credentials = self._session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except Exception as error:  # a provider of the chain failed (IMDS or the container endpoint unreachable …)
            raise AwsSigningError(f"the AWS credential chain failed: {_reason(error)}") from error
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise AwsSigningError("no AWS credentials were found to sign with (environment, profile, container or instance role)")
        request: Any = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(frozen, self.service, region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}
