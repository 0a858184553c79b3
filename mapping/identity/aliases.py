"""Alias calls between two user ids: Segment's way to rename a user or join two known ids.

With `alias_previous_id = "user_id"`, an alias call's previousId is the customer's old
user id and its userId the new one (Segment: "the user's new identity"). Counting the
old id against the `user_id` limit would refuse every such alias, so the old id is
kept as a `former_user_id` instead:

- it joins the customer of the alias's userId, taking along the customer that held it
  as a user id (that customer's `user_id` becomes a `former_user_id`), within limits;
- a later message carrying it as its userId resolves to that customer, and is read as
  the former id (it never becomes a current user id again);
- ESPs key on `user_id`, which now holds only the new id.

The identity graph applies the rule (`IdentityGraph.observe_ranked`); the resolver
looks up the twin of each identifier the store does not hold (`twins`), so a split
across runs finds what one run would have found in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mapping.identity.settings import FORMER_USER_ID

if TYPE_CHECKING:  # `identifiers` reads the alias rule's kinds from here
    from mapping.identity.identifiers import Identifier

__all__ = ["ALIASED", "FORMER_USER_ID", "USER_ID", "twin", "twins"]

USER_ID = "user_id"

ALIASED = frozenset((USER_ID, FORMER_USER_ID))


def twin(ident: Identifier) -> Identifier:
    """The same value as the other of `user_id` and `former_user_id`."""
    kind = FORMER_USER_ID if ident[0] == USER_ID else USER_ID
    return (kind, ident[1])


def twins(unknown: Iterable[Identifier]) -> set[Identifier]:
    """The twins to look up for identifiers the store does not hold.

    A user id the store does not hold may be stored as a former one; a former id it
    does not hold (an alias's previousId) may be stored as someone's user id.
    """
    return {twin(ident) for ident in unknown if ident[0] in ALIASED}
