"""The pure part of the alias rule: what an alias call between user ids carries."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mapping.identity import IdentitySettings, Normalizer, extract
from tests.sync.identity_helpers import msg

RENAMES = IdentitySettings(alias_previous_id="user_id")


def test_an_alias_s_previous_user_id_is_a_former_one() -> None:
    found = extract(msg(1, kind="alias", previous=" old ", user="new"), Normalizer.of(RENAMES))
    assert found == (("user_id", "new"), ("former_user_id", "old"))


@pytest.mark.parametrize(
    ("previous", "user", "expected"),
    [
        ("u1", "u1", (("user_id", "u1"),)),  # to itself: nothing to rename
        ("u1", "null", (("user_id", "u1"),)),  # no usable userId: the previousId is it
    ],
)
def test_an_alias_without_a_new_user_id_is_no_rename(
    previous: str, user: str | None, expected: tuple[tuple[str, str], ...]
) -> None:
    found = extract(msg(1, kind="alias", previous=previous, user=user), Normalizer.of(RENAMES))
    assert found == expected


def test_anonymous_previous_ids_are_unchanged() -> None:
    found = extract(
        msg(1, kind="alias", previous="a1", user="u1"), Normalizer.of(IdentitySettings())
    )
    assert found == (("user_id", "u1"), ("anonymous_id", "a1"))


def test_former_user_ids_rank_right_after_user_ids() -> None:
    ranking = IdentitySettings(priority=["email", "user_id", "anonymous_id"]).ranking()
    assert sorted(ranking, key=ranking.__getitem__)[:3] == ["email", "user_id", "former_user_id"]
    with pytest.raises(ValidationError, match="former_user_id always ranks"):
        IdentitySettings(priority=["former_user_id", "user_id"])
    assert IdentitySettings(limits={"former_user_id": 10}).limits["former_user_id"] == 10
