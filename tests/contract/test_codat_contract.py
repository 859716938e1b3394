"""Contract: every request our Codat client sends, and every response the sandbox returns,
validates against Codat's own OpenAPI files (../shared/codat/oas/), for every operation used."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from app.codat.client import CodatClient
from app.codat.errors import CodatNotFound
from app.codat.models import SourceAccountCreate, SourceAccountUpdate
from app.codat.telemetry import operation_of
from app.sandbox import SandboxConfig, create_sandbox_app
from tests.sandbox.sandbox_oas import OAS_DIR, assert_valid, check_response, find_operation

KEY = "contract-test-codat-key"

EXPECTED_OPERATIONS = {
    "create-company",
    "list-companies",
    "get-company",
    "delete-company",
    "create-connection",
    "get-connection",
    "list-connections",
    "unlink-connection",
    "delete-connection",
    "create-batch-source-account",  # single creates too: its 409 per account is documented
    "delete-bank-feed-credentials",
    "list-source-accounts",
    "update-source-account",
    "delete-source-account",
    "get-integration",
}


class ContractTransport(httpx.AsyncBaseTransport):
    """Validates each request body and each response against the spec, then records it."""

    def __init__(self, app: object) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.operations: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        found = find_operation(request.method, path)
        assert found is not None, f"{request.method} {path} is not in Codat's spec"
        name, template, operation = found
        self.operations.add(operation["operationId"])
        assert operation_of(request.method, path) == operation["operationId"]  # metric labels
        body = await request.aread()
        request_body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if request_body is not None and "schema" in request_body:
            pointer = (
                f"/paths/{template.replace('~', '~0').replace('/', '~1')}"
                f"/{request.method.lower()}/requestBody/content/application~1json/schema"
            )
            assert_valid(name, pointer, json.loads(body))
        else:
            assert body == b"", f"{request.method} {template} sends no body"
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        check_response(request.method, path, response.status_code, content)
        return httpx.Response(response.status_code, headers=response.headers, content=content)


@pytest.fixture
async def codat() -> AsyncIterator[tuple[CodatClient, ContractTransport, object]]:
    assert OAS_DIR.exists(), f"Codat's OpenAPI files are expected in {OAS_DIR}"
    app = create_sandbox_app(
        SandboxConfig(api_key=KEY, public_url="http://127.0.0.1:8000/sandbox/codat")
    )
    transport = ContractTransport(app)
    client = CodatClient("http://codat-sandbox.internal", KEY, transport=transport)
    yield client, transport, app
    await client.aclose()


def v2_account(account_id: str, **changes: object) -> SourceAccountCreate:
    values: dict[str, object] = {
        "id": account_id,
        "accountName": "Business Checking",
        "accountType": "checking",
        "accountNumber": "000123456789",
        "currency": "USD",
        "balance": Decimal("-12.34"),
        "routingInfo": {"bankCode": "021001088", "type": "aba"},
        "accountInfo": {
            "description": "Main account",
            "nickname": "Main",
            "accountOpenDate": "2020-01-31",
            "availableBalance": Decimal("100.5"),
        },
    }
    values.update(changes)
    return SourceAccountCreate.model_validate(values)


async def test_every_operation_the_product_uses_validates_both_ways(
    codat: tuple[CodatClient, ContractTransport, object],
) -> None:
    client, transport, app = codat
    integration = await client.get_integration("hcws")
    assert integration.enabled

    company = await client.create_company(
        "Maple Street Bakery, LLC",
        tags={"bankfeedsCustomerId": "cus-1"},
        description="Bank feeds for customer cus-1",
    )
    assert (await client.get_company(company.id)).id == company.id
    found = await client.find_companies_by_tag("bankfeedsCustomerId", "cus-1")
    assert [c.id for c in found] == [company.id]

    connection = await client.create_connection(company.id)
    assert connection.status == "PendingAuth" and connection.link_url
    assert (await client.get_connection(company.id, connection.id)).link_url != connection.link_url
    assert [c.id for c in await client.list_connections(company.id)] == [connection.id]

    single = await client.create_source_account(company.id, connection.id, v2_account("acc-1"))
    assert single.created and single.result.account is not None
    assert single.result.account.status == "pending"
    batch = await client.create_source_accounts(
        company.id,
        connection.id,
        [
            v2_account("acc-2", accountType="creditCard", routingInfo=None, accountInfo=None),
            v2_account("acc-1"),  # already there: a 409 item, a 207 overall
        ],
    )
    assert [i.created for i in batch] == [True, False]
    all_conflicts = await client.create_source_accounts(
        company.id, connection.id, [v2_account("acc-1")]
    )
    assert all_conflicts[0].already_exists
    listed = await client.list_source_accounts(company.id, connection.id)
    assert sorted(a.id for a in listed) == ["acc-1", "acc-2"]
    renamed = await client.update_source_account(
        company.id,
        connection.id,
        SourceAccountUpdate(id="acc-1", account_name="Renamed", balance=Decimal("5.00")),
    )
    assert renamed.account_name == "Renamed"
    await client.delete_source_account(company.id, connection.id, "acc-2")

    # The customer connects in QuickBooks: then the connection can be unlinked.
    sandbox = app.state.sandbox  # type: ignore[attr-defined]
    sandbox_connection = sandbox.store.companies[company.id].connections[connection.id]
    sandbox.bank_feeds.connect_accounts(sandbox_connection, ["acc-1"], sandbox.clock.today())
    await client.revoke_credentials(company.id, connection.id)
    unlinked = await client.unlink_connection(company.id, connection.id)
    assert unlinked.status == "Unlinked"
    await client.delete_connection(company.id, connection.id)
    with pytest.raises(CodatNotFound):
        await client.get_connection(company.id, connection.id)
    await client.delete_company(company.id)
    with pytest.raises(CodatNotFound):
        await client.get_company(company.id)

    assert transport.operations == EXPECTED_OPERATIONS


async def test_error_responses_carry_codats_error_body(
    codat: tuple[CodatClient, ContractTransport, object],
) -> None:
    client, _, _ = codat
    with pytest.raises(CodatNotFound) as caught:
        await client.get_company("00000000-0000-0000-0000-000000000000")
    assert caught.value.correlation_id
