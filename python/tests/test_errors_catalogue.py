"""docs/errors.md, the catalogue agents code against, checked against the Python SDK's codes
(test/docs/error-catalogue.test.ts checks the TypeScript side): every code has a row with the
status and ``retryable`` the SDK gives it, and the two SDKs have the same codes, so an agent
moved from one to the other branches on the same names."""

from __future__ import annotations

import re

from conftest import REPO
from lanyard import IssuanceError, OriginNotAllowedError, VerificationError
from lanyard.errors import ISSUANCE_ERROR_CODES, VERIFICATION_ERROR_CODES
from lanyard.source import _ISSUER_CODES

ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}|—) \| (yes|no) \|", re.MULTILINE)


def catalogue() -> dict[str, tuple[int | None, bool]]:
    rows: dict[str, tuple[int | None, bool]] = {}
    for code, status, retryable in ROW.findall((REPO / "docs" / "errors.md").read_text()):
        assert code not in rows, f"{code} has two rows"
        rows[code] = (None if status == "—" else int(status), retryable == "yes")
    return rows


def typescript_codes(type_name: str) -> set[str]:
    """The members of a string-literal union type in the TypeScript SDK's errors module."""
    source = (REPO / "packages" / "sdk" / "src" / "errors.ts").read_text()
    match = re.search(rf"export type {type_name} =([^;]+);", source)
    assert match is not None, type_name
    return set(re.findall(r"'([a-z_]+)'", match.group(1)))


def test_every_verifier_code_has_its_status_and_is_retryable_only_for_503() -> None:
    rows = catalogue()

    for code in VERIFICATION_ERROR_CODES:
        status = VerificationError(code, "checked").status  # type: ignore[arg-type]
        assert rows.get(code) == (status, status == 503), code


def test_every_agent_code_has_a_row_with_its_retryable_and_the_source_s_own_never_cross_http() -> None:
    rows = catalogue()
    own = ISSUANCE_ERROR_CODES - _ISSUER_CODES

    assert own == {"circuit_open", "source_closed", "aws_credentials_unavailable"}
    for code in ISSUANCE_ERROR_CODES:
        assert code in rows, code
        assert rows[code][1] == IssuanceError(code, "checked").retryable, code  # type: ignore[arg-type]
    for code in own:
        assert rows[code][0] is None, code
    origin = OriginNotAllowedError("https://elsewhere.example", ()).code
    assert rows.get(origin) == (None, False)


def test_the_python_sdk_has_the_typescript_sdk_s_codes() -> None:
    assert set(ISSUANCE_ERROR_CODES) == typescript_codes("IssuanceErrorCode")
    assert set(VERIFICATION_ERROR_CODES) == typescript_codes("VerificationErrorCode")
    assert {OriginNotAllowedError("https://elsewhere.example", ()).code} == typescript_codes("FleetFetchErrorCode")
