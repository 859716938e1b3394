"""The host app's side: its event endpoints through the ops API, the deliveries made to them,
and its customers' connection status by connect token or ops token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.connect.tokens import mint_connect_token
from tests.conftest import CONNECT_SECRET, Service
from tests.events.support import HOOK_URL, emit, register
from tests.factories import add_customer
from tests.webhooks.support import seed_feed

ENDPOINT = "/ops/event-endpoints/host-app"


async def test_an_endpoint_is_created_with_a_secret_shown_once(service: Service) -> None:
    body = {"url": HOOK_URL, "event_types": ["customer.connected", "customer.connected"]}
    created = await service.client.put(ENDPOINT, json=body, headers=service.ops_headers)
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert created.json()["event_types"] == ["customer.connected"]

    changed = {"url": HOOK_URL + "/v2", "event_types": ["account.connected"]}
    updated = await service.client.put(ENDPOINT, json=changed, headers=service.ops_headers)
    assert updated.status_code == 200
    assert updated.json()["secret"] is None
    assert (updated.json()["url"], updated.json()["event_types"]) == (
        HOOK_URL + "/v2",
        ["account.connected"],
    )
    one = await service.client.get(ENDPOINT, headers=service.ops_headers)
    listed = await service.client.get("/ops/event-endpoints", headers=service.ops_headers)
    assert one.json() == updated.json()
    assert listed.json() == {"endpoints": [updated.json()]}
    assert secret not in one.text + listed.text


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://bank.test/hook", "must use https"),
        ("http://10.0.0.1/hook", "must use https"),
        ("ftp://bank.test/hook", "absolute https URL"),
        ("/hook", "absolute https URL"),
        ("https://user:pw@bank.test/hook", "user name or password"),
        ("https://bank.test/hook#part", "fragment"),
        ("https://bank.test:99999/hook", "invalid port"),
        ("https://bank.test/" + "a" * 2000, "at most 2000"),
    ],
)
async def test_a_url_that_is_not_the_host_apps_own_is_refused(
    service: Service, url: str, message: str
) -> None:
    response = await service.client.put(
        ENDPOINT,
        json={"url": url, "event_types": ["customer.connected"]},
        headers=service.ops_headers,
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "url"] and message in error["msg"]
    listed = await service.client.get("/ops/event-endpoints", headers=service.ops_headers)
    assert listed.json() == {"endpoints": []}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "http://localhost/h", "http://[::1]/h"]
)
async def test_http_is_accepted_on_loopback(service: Service, url: str) -> None:
    response = await service.client.put(
        ENDPOINT,
        json={"url": url, "event_types": ["customer.connected"]},
        headers=service.ops_headers,
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": HOOK_URL, "event_types": ["customer.exploded"]}, ["body", "event_types", 0]),
        ({"url": HOOK_URL, "event_types": []}, ["body", "event_types"]),
        ({"url": HOOK_URL}, ["body", "event_types"]),
        ({"url": HOOK_URL, "event_types": ["customer.connected"], "x": 1}, ["body", "x"]),
    ],
)
async def test_bad_event_types_are_refused_naming_the_field(
    service: Service, body: dict, field: list
) -> None:
    response = await service.client.put(ENDPOINT, json=body, headers=service.ops_headers)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [field]


async def test_endpoints_need_the_ops_token(service: Service) -> None:
    body = {"url": HOOK_URL, "event_types": ["customer.connected"]}
    assert (await service.client.put(ENDPOINT, json=body)).status_code == 401
    assert (await service.client.get("/ops/event-deliveries")).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    assert (await service.client.get("/ops/event-endpoints", headers=bad)).status_code == 401


async def test_unknown_endpoints_and_deliveries_are_404(service: Service) -> None:
    headers = service.ops_headers
    assert (await service.client.get(ENDPOINT, headers=headers)).status_code == 404
    assert (await service.client.delete(ENDPOINT, headers=headers)).status_code == 404
    rotate = await service.client.post(ENDPOINT + "/rotate-secret", headers=headers)
    assert rotate.status_code == 404 and "host-app" in rotate.json()["detail"]
    again = await service.client.post("/ops/event-deliveries/7/redeliver", headers=headers)
    assert again.status_code == 404


async def test_deliveries_are_listed_with_filters(service: Service) -> None:
    await register(service)
    await register(service, "other", event_types=["customer.connected"])
    await add_customer(service.sessions, "cus-a", accounts=0)
    await add_customer(service.sessions, "cus-b", accounts=0)
    [a] = await emit(service.sessions, "cus-a", "t1")
    [b] = await emit(service.sessions, "cus-b", "t2")
    headers = service.ops_headers

    async def ids(**params: str) -> list[str]:
        response = await service.client.get("/ops/event-deliveries", params=params, headers=headers)
        assert response.status_code == 200
        return [d["event_id"] for d in response.json()["deliveries"]]

    assert await ids() == [b, a]
    assert await ids(customer_id="cus-a") == [a]
    assert await ids(endpoint="other") == []
    assert await ids(event_type="transactions.pushed", limit="1") == [b]
    assert await ids(status="delivered") == []
    listed = await service.client.get("/ops/event-deliveries", headers=headers)
    first = listed.json()["deliveries"][0]
    assert first["event"]["data"]["transaction_ids"] == ["t2"]
    assert (first["status"], first["attempts"], first["endpoint_name"]) == (
        "pending",
        0,
        "host-app",
    )
    refused = await service.client.get(
        "/ops/event-deliveries", params={"status": "lost"}, headers=headers
    )
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", "status"]


async def test_a_delivery_being_attempted_cannot_be_redelivered(service: Service) -> None:
    from app.events import deliveries as queue
    from tests.events.support import Clock

    await register(service)
    await add_customer(service.sessions, accounts=0)
    await emit(service.sessions, "cus-1", "t1")
    clock = Clock()
    async with service.sessions() as session:
        [due] = await queue.due(session, clock.now, 10)
        assert await queue.claim(session, due.id, 0, clock.now, timedelta(minutes=5))
        await session.commit()
    response = await service.client.post(
        f"/ops/event-deliveries/{due.id}/redeliver", headers=service.ops_headers
    )
    assert response.status_code == 409 and "right now" in response.json()["detail"]


# --- connection status ------------------------------------------------------------------------


def token(customer_id: str = "cus-1", **kwargs: object) -> str:
    return mint_connect_token(CONNECT_SECRET, customer_id, **kwargs)  # type: ignore[arg-type]


async def test_status_by_token(service: Service) -> None:
    await seed_feed(service.sessions, status="Linked")
    response = await service.client.get("/connect-bank-feeds/status", params={"token": token()})
    assert response.status_code == 200
    assert response.json() == {
        "customer_id": "cus-1",
        "connected": True,
        "connection_status": "Linked",
        "accounts_connected": 0,
        "accounts_total": 2,
        "needs_action": True,
        "reasons": ["accounts_pending"],
    }
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == "*"


async def test_status_does_not_spend_the_buttons_token(service: Service) -> None:
    await add_customer(service.sessions, accounts=1)
    button = token()
    for _ in range(2):
        response = await service.client.get("/connect-bank-feeds/status", params={"token": button})
        assert response.json() == {
            "customer_id": "cus-1",
            "connected": False,
            "connection_status": None,
            "accounts_connected": 0,
            "accounts_total": 1,
            "needs_action": True,
            "reasons": ["no_connection"],
        }
    click = await service.client.get("/connect-bank-feeds", params={"token": button})
    assert click.status_code == 302  # the button's token still works, once
    replay = await service.client.get("/connect-bank-feeds", params={"token": button})
    assert replay.status_code == 401
    after = await service.client.get("/connect-bank-feeds/status", params={"token": button})
    assert after.json()["reasons"] == ["connection_pending_auth"]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "not-a-jwt",
        mint_connect_token("another-secret-entirely-0123456789", "cus-1"),
        mint_connect_token(
            CONNECT_SECRET,
            "cus-1",
            now=datetime(2020, 1, 1, tzinfo=UTC),
            lifetime=timedelta(minutes=5),
        ),
    ],
)
async def test_status_refuses_a_bad_token(service: Service, bad: str | None) -> None:
    await add_customer(service.sessions, accounts=1)
    params = {} if bad is None else {"token": bad}
    response = await service.client.get("/connect-bank-feeds/status", params=params)
    assert response.status_code == 401
    assert response.json() == {"detail": "This link is not valid."}
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "no-store"


async def test_status_of_an_unknown_customer(service: Service) -> None:
    response = await service.client.get(
        "/connect-bank-feeds/status", params={"token": token("cus-nobody")}
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "Customer 'cus-nobody' not found."}
    assert response.headers["access-control-allow-origin"] == "*"


async def test_status_for_the_host_apps_back_end(service: Service) -> None:
    await seed_feed(service.sessions, status="Unlinked")
    route = "/ops/customers/cus-1/connection-status"
    response = await service.client.get(route, headers=service.ops_headers)
    assert response.status_code == 200
    by_token = await service.client.get("/connect-bank-feeds/status", params={"token": token()})
    assert response.json() == by_token.json()
    assert response.json()["reasons"] == ["connection_unlinked"]
    assert (await service.client.get(route)).status_code == 401
    missing = await service.client.get(
        "/ops/customers/cus-2/connection-status", headers=service.ops_headers
    )
    assert missing.status_code == 404
