"""Contract: the webhook-consumer calls (Platform API) validate against Codat's spec both ways."""

from __future__ import annotations

import pytest

from app.codat.client import CodatClient
from app.codat.errors import CodatBadRequest, CodatNotFound
from tests.contract.test_codat_contract import ContractTransport, codat

URL = "https://bank.example.com/webhooks/codat"
__all__ = ["codat"]  # the fixture


async def test_webhook_consumer_operations_validate_both_ways(
    codat: tuple[CodatClient, ContractTransport, object],
) -> None:
    client, transport, _ = codat
    assert await client.list_webhook_consumers() == []

    created = await client.create_webhook_consumer(
        URL, ["connection.connected", "bankFeeds.sourceAccount.connected"]
    )
    assert created.url == URL and not created.disabled
    assert created.event_types == ["connection.connected", "bankFeeds.sourceAccount.connected"]
    [listed] = await client.list_webhook_consumers()
    assert listed.id == created.id and listed.event_types == created.event_types

    with pytest.raises(CodatBadRequest):  # not an event type Codat sends
        await client.create_webhook_consumer(URL, ["DataConnectionStatusChanged"])

    await client.delete_webhook_consumer(created.id)
    assert await client.list_webhook_consumers() == []
    with pytest.raises(CodatNotFound):
        await client.delete_webhook_consumer(created.id)

    assert transport.operations == {
        "list-webhook-consumers",
        "create-webhook-consumer",
        "delete-webhook-consumer",
    }
