"""Mailchimp Marketing API destination (audiences, events, journeys)."""

from connectors.mailchimp.destination import MailchimpDestination
from connectors.mailchimp.settings import MailchimpSettings

__all__ = ["MailchimpDestination", "MailchimpSettings"]
