"""My Number detection: the check digit decides, not the length alone."""

from __future__ import annotations

import pytest

from services.rules.my_number import contains_my_number, found_in, is_my_number

VALID = "123456789018"


def _with_check_digit(first_eleven: str) -> str:
    return next(d for d in (first_eleven + str(c) for c in range(10)) if is_my_number(d))


def test_the_check_digit_decides() -> None:
    assert is_my_number(VALID)
    wrong = [VALID[:11] + str(d) for d in range(10) if str(d) != VALID[11]]
    assert not any(is_my_number(w) for w in wrong)
    # every 11-digit body has exactly one check digit
    for body in ("00000000000", "98765432109", "31415926535", "27182818284"):
        assert sum(is_my_number(body + str(c)) for c in range(10)) == 1


@pytest.mark.parametrize(
    "text",
    [VALID, "1234 5678 9018", "1234-5678-9018", "KYC:123456789018", "番号123456789018です"],
)
def test_written_in_any_usual_form_it_is_found(text: str) -> None:
    assert contains_my_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "123456789010",  # wrong check digit
        "1234567890180",  # 13 digits
        "12345678901",  # 11 digits
        "+81 1234 5678 9018",  # a telephone number
        "KYC-gdpr-ext-1",
    ],
)
def test_other_numbers_are_not(text: str) -> None:
    assert not contains_my_number(text)


def test_it_says_where_never_what() -> None:
    event = {
        "subject": {"identifiers": {"email": "a@example.jp", "member_id": VALID}},
        "verification": {"reference": _with_check_digit("55555555555")},
        "grounds": ["no_longer_needed"],
    }
    found = found_in(event)
    assert found == ["subject.identifiers.member_id", "verification.reference"]
    assert not any(VALID in f for f in found)
