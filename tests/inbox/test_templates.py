"""Reply templates: languages, variables, fallback, sandboxing, whitespace, truncation, order numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inbox.templates import ReplyTemplateError, ReplyTemplates, Suggestion, find_order_number

INTENTS = ("delivery", "billing", "question", "complaint", "praise", "spam", "other")
LANGUAGES = ("fr", "ro", "en")
FULL = {
    "customer_name": "Ioana",
    "channel": "x",
    "agent_name": "Mihai",
    "brand": "Livrio",
    "order_number": "458812",
}


@pytest.fixture(scope="module")
def shipped() -> ReplyTemplates:
    return ReplyTemplates()


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        (folder / name).write_text(source, encoding="utf-8")
    return folder


def _assert_clean(text: str) -> None:
    assert text == text.strip()
    assert "\n\n" not in text
    assert "  " not in text
    assert not re.search(r" [,.]", text)
    assert "{" not in text and "}" not in text
    assert "None" not in text and "()" not in text


# --------------------------------------------------------------------------- shipped templates


def test_every_intent_and_generic_ships_in_fr_ro_en(shipped: ReplyTemplates) -> None:
    pairs = set(shipped.available())
    for language in LANGUAGES:
        for intent in (*INTENTS, "generic"):
            assert (intent, language) in pairs


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("intent", INTENTS)
def test_shipped_templates_render_with_all_variables(shipped: ReplyTemplates, intent: str, language: str) -> None:
    suggestion = shipped.render(intent=intent, language=language, variables=FULL, max_chars=280)
    assert suggestion == Suggestion(
        text=suggestion.text, template=f"{intent}.{language}.j2", language=language, truncated=False
    )
    _assert_clean(suggestion.text)
    assert len(suggestion.text) <= 280
    assert "Mihai" in suggestion.text
    if intent != "spam":
        assert "Ioana" in suggestion.text
    if intent in ("delivery", "billing"):
        assert "458812" in suggestion.text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("intent", INTENTS)
@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"customer_name": None, "order_number": None, "agent_name": None, "brand": None, "channel": None},
        {"channel": "google_reviews", "brand": "Livrio"},
        {"channel": "mastodon", "kind": "dm", "customer_name": "Jo"},
    ],
)
def test_shipped_templates_read_well_without_variables(
    shipped: ReplyTemplates, intent: str, language: str, variables: dict[str, str | None]
) -> None:
    text = shipped.render(intent=intent, language=language, variables=variables).text
    _assert_clean(text)
    assert len(text) > 40
    assert not text.startswith(("–", ","))


def test_delivery_without_order_number_asks_for_it(shipped: ReplyTemplates) -> None:
    asks = {
        "en": "order number",
        "fr": "numéro de commande",
        "ro": "numărul comenzii",
    }
    for language, phrase in asks.items():
        without = shipped.render(intent="delivery", language=language, variables={"customer_name": "A"}).text
        with_number = shipped.render(intent="delivery", language=language, variables={"order_number": "991122"}).text
        assert phrase in without
        assert phrase not in with_number and "991122" in with_number


@pytest.mark.parametrize(
    ("variables", "wording"),
    [
        ({"channel": "x"}, "DM us"),
        ({"channel": "X"}, "DM us"),
        ({"channel": "google_reviews"}, "contact page"),
        ({"channel": "Google"}, "contact page"),
        ({"channel": "Trustpilot"}, "contact page"),
        ({"kind": "review", "channel": "somewhere"}, "contact page"),
        ({"kind": "dm", "channel": "x"}, "send me"),
    ],
)
def test_the_ask_fits_the_channel(shipped: ReplyTemplates, variables: dict[str, str], wording: str) -> None:
    text = shipped.render(intent="delivery", language="en", variables=variables).text
    assert wording in text
    assert ("DM" in text) == (wording == "DM us")


def test_shipped_templates_use_proper_diacritics(shipped: ReplyTemplates) -> None:
    romanian = " ".join(shipped.render(intent=i, language="ro", variables=FULL).text for i in INTENTS)
    french = " ".join(shipped.render(intent=i, language="fr", variables=FULL).text for i in INTENTS)
    assert set("șțăâî") <= set(romanian)
    assert not set("şţ") & set(romanian)  # cedilla forms are the wrong letters for Romanian
    assert set("éèà") <= set(french)


# --------------------------------------------------------------------------- fallback


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return _write(
        tmp_path,
        {
            "delivery.fr.j2": "livraison fr",
            "delivery.en.j2": "delivery en",
            "generic.ro.j2": "generic ro",
            "generic.en.j2": "generic en",
        },
    )


@pytest.mark.parametrize(
    ("intent", "language", "template", "used_language", "text"),
    [
        ("delivery", "fr", "delivery.fr.j2", "fr", "livraison fr"),
        ("delivery", "de", "delivery.en.j2", "en", "delivery en"),
        ("delivery", "ro", "delivery.en.j2", "en", "delivery en"),
        ("billing", "ro", "generic.ro.j2", "ro", "generic ro"),
        ("billing", "de", "generic.en.j2", "en", "generic en"),
        ("../delivery", "fr", "generic.en.j2", "en", "generic en"),
        ("DELIVERY", "FR", "delivery.fr.j2", "fr", "livraison fr"),
    ],
)
def test_fallback_chain(folder: Path, intent: str, language: str, template: str, used_language: str, text: str) -> None:
    suggestion = ReplyTemplates(folder).render(intent, language, {})
    assert (suggestion.template, suggestion.language, suggestion.text) == (template, used_language, text)


def test_shipped_fallback_to_english_for_other_languages(shipped: ReplyTemplates) -> None:
    suggestion = shipped.render(intent="delivery", language="de", variables=FULL)
    assert (suggestion.template, suggestion.language) == ("delivery.en.j2", "en")


def test_no_template_at_all_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, {"delivery.fr.j2": "x"})
    with pytest.raises(ReplyTemplateError):
        ReplyTemplates(tmp_path).render("praise", "ro", {})


# --------------------------------------------------------------------------- safety


@pytest.mark.parametrize("language", LANGUAGES)
def test_template_syntax_in_variables_stays_literal(shipped: ReplyTemplates, language: str) -> None:
    sneaky = "{{ 7*7 }} {% for x in range(3) %}X{% endfor %}"
    text = shipped.render(intent="praise", language=language, variables={"customer_name": sneaky}).text
    assert "{{ 7*7 }}" in text and "{% for x in range(3) %}X{% endfor %}" in text
    assert "49" not in text and "XXX" not in text


def test_customer_text_variable_stays_literal(tmp_path: Path) -> None:
    _write(tmp_path, {"generic.en.j2": "{{ customer_name }} wrote: {{ text }}"})
    suggestion = ReplyTemplates(tmp_path).render(
        "generic", "en", {"customer_name": "{{ 7*7 }}", "text": "{{ config }} {{ ''.__class__ }} %s {0}"}
    )
    assert suggestion.text == "{{ 7*7 }} wrote: {{ config }} {{ ''.__class__ }} %s {0}"


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    _write(tmp_path, {"generic.en.j2": "a{{ ''.__class__.__mro__ }}b", "other.en.j2": "{{ range(10**9) | list }}"})
    templates = ReplyTemplates(tmp_path)
    assert templates.render("generic", "en", {}).text == "ab"
    with pytest.raises(ReplyTemplateError):
        templates.render("other", "en", {})


def test_broken_template_names_its_file(tmp_path: Path) -> None:
    _write(tmp_path, {"generic.en.j2": "{% if %}"})
    with pytest.raises(ReplyTemplateError, match=r"generic\.en\.j2"):
        ReplyTemplates(tmp_path).render("praise", "en", {})


def test_each_template_is_compiled_once(tmp_path: Path) -> None:
    _write(tmp_path, {"generic.en.j2": "first {{ brand }}"})
    templates = ReplyTemplates(tmp_path)
    assert templates.render("generic", "en", {"brand": "A"}).text == "first A"
    _write(tmp_path, {"generic.en.j2": "second {{ brand }}"})
    assert templates.render("generic", "en", {"brand": "B"}).text == "first B"
    assert ReplyTemplates(tmp_path).render("generic", "en", {"brand": "C"}).text == "second C"


# --------------------------------------------------------------------------- whitespace


def test_whitespace_is_trimmed_and_collapsed(tmp_path: Path) -> None:
    source = """

    {% if customer_name %}Hi   {{ customer_name }},{% else %}Hi,{% endif %}
      thanks
    for writing{% if order_number %} about order {{ order_number }}{% endif %} .

    {% if agent_name %}
    – {{ agent_name }}
    {% endif %}



    {% if brand %}{{ brand }}{% endif %}

    """
    templates = ReplyTemplates(_write(tmp_path, {"generic.en.j2": source}))
    assert templates.render("generic", "en", {"customer_name": "Ann\n\nLee"}).text == "Hi Ann Lee, thanks for writing."
    assert (
        templates.render("generic", "en", {"order_number": "1234", "agent_name": "Bo", "brand": "Acme"}).text
        == "Hi, thanks for writing about order 1234.\n– Bo\nAcme"
    )


# --------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("max_chars", [280, 120, 61, 40, 12, 2, 1])
def test_truncation_at_word_boundary(tmp_path: Path, max_chars: int) -> None:
    words = "Thank you so much for your lovely message about the new winter collection, it means a lot to us all"
    full_text = f"{words}.\n– Andreea, Livrio team"
    templates = ReplyTemplates(_write(tmp_path, {"generic.en.j2": words + ".\n\n– {{ agent_name }}, Livrio team"}))
    suggestion = templates.render("generic", "en", {"agent_name": "Andreea"}, max_chars=max_chars)
    if len(full_text) <= max_chars:
        assert suggestion.text == full_text and not suggestion.truncated
        return
    assert suggestion.truncated
    assert len(suggestion.text) <= max_chars
    assert suggestion.text.endswith("…")
    kept = suggestion.text[:-1]
    assert full_text.startswith(kept)
    if max_chars > 12:  # long enough to hold whole words: never cut one in half
        assert full_text[len(kept)] in " \n,."


def test_shipped_suggestion_truncated_for_x(shipped: ReplyTemplates) -> None:
    long_name = "Alexandra-Maria Constantinescu-Ionescu de la Vâlcea " * 3
    variables = dict(FULL, customer_name=long_name.strip())
    full = shipped.render(intent="complaint", language="ro", variables=variables)
    short = shipped.render(intent="complaint", language="ro", variables=variables, max_chars=280)
    assert len(full.text) > 280 and not full.truncated
    assert short.truncated and len(short.text) <= 280 and short.text.endswith("…")


def test_max_chars_must_be_positive(shipped: ReplyTemplates) -> None:
    with pytest.raises(ValueError):
        shipped.render(intent="praise", language="en", variables={}, max_chars=0)


# --------------------------------------------------------------------------- order numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@ShopNovaHelp order #48213 was supposed to arrive Tuesday", "48213"),
        ("where is #12345 ??", "12345"),
        ("order 123456 still not here", "123456"),
        ("Order no. 123456!", "123456"),
        ("ma commande n°45678 n'est pas arrivée", "45678"),
        ("Commande N° 45678", "45678"),
        ("comanda 778899 nu a ajuns", "778899"),
        ("Comanda nr. 778899", "778899"),
        ("comandă nr 778899", "778899"),
        ("ref AB-12345 please", "AB-12345"),
        ("order: AB-12345", "AB-12345"),
        ("pedido 99887 no ha llegado", "99887"),
    ],
)
def test_find_order_number(text: str, expected: str) -> None:
    assert find_order_number(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "waited 2 weeks for order 12",
        "#1 fan of your shop",
        "call me on 0722123456",
        "paid 4999 lei for nothing",
        "10/10 would order again",
        "#fail #neveragain",
        "",
    ],
)
def test_find_order_number_ignores_other_numbers(text: str) -> None:
    assert find_order_number(text) is None
