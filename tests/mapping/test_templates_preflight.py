"""Variables extracted from Klaviyo and Mailchimp templates, checked against a mapping."""

from __future__ import annotations

from mapping.fields import FieldSpec
from mapping.templates import Variable, check_template, klaviyo_variables, mailchimp_variables

KLAVIYO = """
<p>Hi {{ person.first_name|default:'there' }},</p>
<p>You left {{ event.ProductName }} ({{event.extra.Url}}) in your cart.</p>
{% if person.city %}<p>Ships to {{ person.city }}</p>{% endif %}
{{ person|lookup:'Loyalty Tier' }} {{ organization.name }} {% unsubscribe %}
{{ event.ProductName|title }}
"""

MAILCHIMP = """*|MC:SUBJECT|* Hello *|IF:FNAME|**|FNAME|**|ELSE:|*friend*|END:IF|*,
your code is *|COUPON|* and points *|POINTS|*. *|UNSUB|* *|LIST:COMPANY|* *|EMAIL|*"""


def spec(**data: object) -> FieldSpec:
    return FieldSpec.model_validate(data)


def test_klaviyo_variables() -> None:
    assert klaviyo_variables(KLAVIYO) == [
        Variable("person.first_name", "there", False),
        Variable("event.ProductName", None, False),
        Variable("event.extra.Url", None, False),
        Variable("person.city", None, True),
        Variable("person.Loyalty Tier", None, False),
    ]


def test_mailchimp_variables_leave_out_system_tags() -> None:
    assert mailchimp_variables(MAILCHIMP) == [
        Variable("FNAME", None, True),
        Variable("COUPON", None, False),
        Variable("POINTS", None, False),
    ]


def test_klaviyo_preflight_reports_unfilled_and_fallbackless_variables() -> None:
    fields = {
        "event.ProductName": spec(path="properties.name", fallback="your item"),
        "event.extra.Url": spec(path="properties.url", required=True),
    }
    problems = check_template("klaviyo:Cart (T1)", KLAVIYO, "klaviyo", fields)
    assert [(p.variable, p.severity) for p in problems] == [
        ("event.extra.Url", "warning"),
        ("person.Loyalty Tier", "error"),
    ]
    assert "records without a value are rejected" in problems[0].message
    assert str(problems[1]).startswith("error: klaviyo:Cart (T1): person.Loyalty Tier is used")


def test_mailchimp_preflight() -> None:
    fields = {"COUPON": spec(path="properties.coupon", fallback="WELCOME10")}
    problems = check_template("mailchimp:template 7", MAILCHIMP, "mailchimp", fields)
    assert [(p.variable, p.severity) for p in problems] == [("POINTS", "error")]
