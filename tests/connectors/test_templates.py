"""Template preflight against mocked Klaviyo and Mailchimp template endpoints."""

from __future__ import annotations

import httpx

from connectors.klaviyo.settings import KlaviyoSettings
from connectors.mailchimp.settings import MailchimpSettings
from connectors.templates import preflight_templates, run_preflight
from mapping.fields import FieldSpec
from mapping.templates import TemplateCheck

KLAVIYO_KEY = "pk_test_123"
MC_KEY = "0123456789abcdef0123456789abcdef-us1"


def template(tid: str, name: str, html: str) -> dict[str, object]:
    return {
        "type": "template",
        "id": tid,
        "attributes": {"name": name, "editor_type": "CODE", "html": html, "text": None},
    }


def handler(seen: list[httpx.Request]) -> httpx.MockTransport:
    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path
        if path == "/api/templates" and "page[cursor]" not in request.url.params:
            return httpx.Response(
                200,
                json={
                    "data": [template("T1", "Welcome", "Hi {{ person.first_name }}")],
                    "links": {
                        "self": "https://k.test/api/templates",
                        "next": "https://k.test/api/templates?page%5Bcursor%5D=c2",
                    },
                },
            )
        if path == "/api/templates":
            html = "{{ event.ProductName }} {{ person.first_name|default:'there' }}"
            return httpx.Response(
                200,
                json={
                    "data": [template("T2", "Abandoned cart", html)],
                    "links": {"self": str(request.url)},
                },
            )
        if path == "/3.0/templates/77/default-content":
            return httpx.Response(
                200, json={"sections": {"body": "Hi *|FNAME|*", "f": "*|UNSUB|*"}}
            )
        if path == "/3.0/campaigns/c9/content":
            return httpx.Response(
                200, json={"html": "<p>*|COUPON|*</p>", "plain_text": "*|COUPON|*"}
            )
        return httpx.Response(
            404,
            json={
                "type": "x",
                "title": "Resource Not Found",
                "status": 404,
                "detail": "nope",
                "instance": "i",
            },
        )

    return httpx.MockTransport(respond)


DESTINATIONS = {
    "klaviyo": KlaviyoSettings(api_key=KLAVIYO_KEY, base_url="https://k.test"),
    "mailchimp": MailchimpSettings(api_key=MC_KEY, base_url="https://mc.test/3.0", list_id="L1"),
}


def check(destination: str, name: str, kind: str = "template", **fields: dict[str, object]):
    return TemplateCheck(
        destination=destination,
        template=name,
        kind=kind,  # type: ignore[arg-type]
        fields={k: FieldSpec.model_validate(v) for k, v in fields.items()},
    )


async def test_preflight_pages_klaviyo_and_reads_mailchimp() -> None:
    seen: list[httpx.Request] = []
    checks = [
        check("klaviyo", "Abandoned cart"),
        check(
            "klaviyo",
            "T1",
            **{"person.first_name": {"path": "traits.first_name", "fallback": "there"}},
        ),
        check("mailchimp", "77", FNAME={"path": "traits.first_name"}),
        check("mailchimp", "c9", kind="campaign"),
        check("mailchimp", "404"),
        check("nowhere", "x"),
    ]
    problems = await preflight_templates(checks, DESTINATIONS, transport=handler(seen))
    assert [(p.template, p.variable, p.severity) for p in problems] == [
        ("klaviyo:Abandoned cart (T2)", "event.ProductName", "error"),
        ("mailchimp:template 77", "FNAME", "warning"),
        ("mailchimp:campaign c9", "COUPON", "error"),
        ("mailchimp:404", "", "error"),
        ("nowhere:x", "", "error"),
    ]
    assert "nope" in problems[3].message
    assert "no destination named 'nowhere'" in problems[4].message
    # Klaviyo's template list is read once (two pages), with auth and revision headers.
    klaviyo = [r for r in seen if r.url.host == "k.test"]
    assert len(klaviyo) == 2
    assert klaviyo[0].headers["Authorization"] == f"Klaviyo-API-Key {KLAVIYO_KEY}"
    assert klaviyo[0].headers["revision"] == "2026-07-15"
    assert klaviyo[0].url.params["page[size]"] == "10"
    assert klaviyo[1].url.params["page[cursor]"] == "c2"
    mailchimp = [r for r in seen if r.url.host == "mc.test"]
    assert mailchimp[0].headers["Authorization"].startswith("Basic ")


def test_run_preflight_for_the_cli() -> None:
    problems = run_preflight([check("klaviyo", "Missing")], DESTINATIONS, transport=handler([]))
    assert [p.message for p in problems] == [
        "cannot read the template: no Klaviyo template with this id or name"
    ]
