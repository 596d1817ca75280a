"""IAM authentication to an issuer deployed on AWS: requests signed with SigV4 for
``execute-api`` (API Gateway's IAM authorization), with botocore's credential chain
(environment, shared config and SSO, container and instance roles …).

botocore is an optional dependency: ``pip install 'lanyard[aws]'``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from .errors import IssuanceError

if TYPE_CHECKING:
    import botocore.session

# https://<api id>.execute-api.<region>.amazonaws.com[.cn]/<stage>
_EXECUTE_API_HOST = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?")


def region_of_api_url(url: str) -> str | None:
    """The region of an ``execute-api`` URL, or ``None`` for any other host."""
    match = _EXECUTE_API_HOST.fullmatch(urlsplit(url).hostname or "")
    return match.group(1) if match else None


class AwsIam:
    """Signs the source's requests with SigV4 instead of sending a bearer token.

    ``region`` defaults to the region in an ``execute-api`` URL, then the session's region;
    ``session`` defaults to a new ``botocore.session.Session()`` (the default credential chain).
    A custom domain in front of API Gateway needs ``region`` (the URL does not name it).
    """

    def __init__(self, *, region: str | None = None, session: botocore.session.Session | None = None, service: str = "execute-api") -> None:
        try:
            import botocore.session as botocore_session
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise TypeError("IAM authentication needs botocore: pip install 'lanyard[aws]'") from error
        self._session = session if session is not None else botocore_session.Session()
        self._region = region
        self.service = service

    def region_for(self, url: str) -> str:
        """The region requests to ``url`` are signed for; raises ``TypeError`` when none is known."""
        region = self._region or region_of_api_url(url) or self._session.get_config_variable("region")
        if not isinstance(region, str) or region == "":
            raise TypeError("aws: no region (pass AwsIam(region=…), use an execute-api URL, or set AWS_REGION)")
        return region

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """The headers to send: ``headers`` plus ``Authorization``, ``X-Amz-Date`` and, for
        temporary credentials, ``X-Amz-Security-Token``."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self._session.get_credentials()
        if credentials is None:
            raise IssuanceError("unauthenticated", "no AWS credentials were found for IAM authentication")
        request: Any = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        SigV4Auth(credentials.get_frozen_credentials(), self.service, self.region_for(url)).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}
