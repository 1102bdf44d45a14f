"""The bundled discovery template's shortcut (templating.DEFAULT_DISCOVERY): on any context,
the document made without Jinja is the one rendering the template gives, or the render goes
through Jinja and fails the same way."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wellknown_build import templating
from wellknown_build.errors import TemplateError
from wellknown_build.templating import DEFAULT_DISCOVERY, Renderer


def _rendered() -> Renderer:
    """A renderer that always renders the template (the shortcut off)."""
    renderer = Renderer()
    renderer._bundled = False
    return renderer


SHORTCUT, RENDERED = Renderer(), _rendered()


def _typed(value: Any) -> Any:
    """`value` with every type and key order spelled out (-0.0 is not 0.0, 1 is not 1.0)."""
    if isinstance(value, dict):
        return ("dict", type(value).__name__, [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", type(value).__name__, [_typed(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value), math.copysign(1.0, value))
    if type(value) is int:
        return ("int", hex(value))  # (repr refuses ints past 4,300 digits)
    return (type(value).__name__, repr(value))


def _outcome(renderer: Renderer, context: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", _typed(renderer.json_object(DEFAULT_DISCOVERY, context))
    except TemplateError as e:
        return "error", str(e)


def _containers(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [id(value), *(i for v in value.values() for i in _containers(v))]
    if isinstance(value, list):
        return [id(value), *(i for v in value for i in _containers(v))]
    return []


_text = st.text(st.characters(codec=None, categories=None), max_size=8)  # surrogates too
_plain_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),  # -0.0 too
    st.text(max_size=8),
)
_hostile_leaf = st.one_of(
    st.floats(),  # NaN, infinities
    st.integers(),
    st.builds(pow, st.just(10), st.just(5000)),  # beyond int-to-str's digit limit (3.11+)
    _text,
    st.binary(max_size=4),
    st.tuples(st.integers()),
    st.frozensets(st.integers(), max_size=2),
)
_leaf = st.one_of(_plain_leaf, _plain_leaf, _plain_leaf, _plain_leaf, _hostile_leaf)
_key = st.one_of(*[st.text(max_size=6)] * 6, _text, st.integers(), st.none(), st.floats())
_value = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_key, children, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def _contexts(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly what the render passes (the shortcut's case), now and then anything."""
    odd = st.integers(0, 9).map(lambda n: n == 0)
    context: dict[str, Any] = {
        "issuer": draw(_value) if draw(odd) else draw(st.text(max_size=12)),
        "jwks_uri": draw(_value) if draw(odd) else draw(st.text(max_size=12)),
        "algs": draw(_value) if draw(odd) else draw(st.lists(st.text(max_size=6), max_size=3)),
        "discovery": draw(_value) if draw(odd) else draw(st.dictionaries(_key, _value, max_size=5)),
        "instance_id": "i",
        "keys": [],
    }
    if draw(odd):
        context.pop(draw(st.sampled_from(["issuer", "jwks_uri", "algs", "discovery"])))
    return context


@settings(max_examples=1500)
@given(_contexts())
def test_the_shortcut_is_the_rendered_template(context: dict[str, Any]) -> None:
    assert _outcome(SHORTCUT, context) == _outcome(RENDERED, context)


@settings(max_examples=300)
@given(_contexts())
def test_the_shortcut_shares_no_list_or_object_with_the_context(context: dict[str, Any]) -> None:
    """As json.loads makes new ones: nothing done to the document reaches the instance."""
    try:
        document = SHORTCUT.json_object(DEFAULT_DISCOVERY, context)
    except TemplateError:
        return
    assert not set(_containers(document)) & set(_containers(context))


def _nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "fails"),
    [
        ({"a": [1, -0.0, 2.5, None, True, "x", {"b": {}}]}, False),
        (float("nan"), True),
        ([float("inf")], True),
        (2**53 - 1, False),
        (2**53, True),  # jsondoc.problems: parsers round it
        pytest.param(-(10**5000), True, id="past-the-int-to-str-limit"),
        ("\ud800", True),  # a lone surrogate
        ({"\ud800": 1}, False),  # (problems() looks at values only; orjson refuses it later)
        ("tab\there", False),  # not printable: rendered, same result
        ({1: "a"}, False),  # tojson makes the key "1": rendered, not taken as it is
        ({None: "a", "null": "b"}, False),  # two "null" members: json.loads keeps the last
        ((1, 2), False),  # a tuple becomes a list
        (b"x", True),
        (frozenset(), True),
    ],
)
def test_values_at_the_edges_are_the_rendered_template(value: Any, fails: bool) -> None:
    context = {"issuer": "https://a.example", "jwks_uri": "https://a.example/j", "algs": ["ES256"]}
    context["discovery"] = {"x": value}  # type: ignore[assignment]
    rendered = _outcome(RENDERED, context)
    assert _outcome(SHORTCUT, context) == rendered
    assert (rendered[0] == "error") is fails


@pytest.mark.parametrize("depth", [1, 29, 30, 31, 32, 100, 5000])
def test_deep_values_are_the_rendered_template(depth: int) -> None:
    """Past the shortcut's depth the template is rendered (json's recursion limit is then
    the template's error, not the shortcut's silence)."""
    context = {"issuer": "https://a.example", "jwks_uri": "https://a.example/j", "algs": ["ES256"]}
    context["discovery"] = {"deep": _nested(depth)}  # type: ignore[assignment]
    if depth > 32:  # the shortcut declines: Jinja renders it (whose json may refuse it)
        assert templating._default_discovery(context) is None
    else:
        assert _outcome(SHORTCUT, context) == _outcome(RENDERED, context)


def test_the_bundled_template_takes_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The digest is the bundled text's (were the template edited, the shortcut would stand
    for a text no longer shipped: this fails until the digest, and the shortcut, follow)."""
    assert Renderer()._bundled_discovery()
    monkeypatch.setattr(jinja2.Template, "render", _refused)
    context = {"issuer": "https://a.example", "jwks_uri": "https://a.example/j", "algs": []}
    context["discovery"] = {}  # type: ignore[assignment]
    assert Renderer().json_object(DEFAULT_DISCOVERY, context)["issuer"] == "https://a.example"


def _refused(*args: object, **kwargs: object) -> str:
    raise AssertionError("rendered with Jinja")


class _Context(dict):  # type: ignore[type-arg]
    def __getitem__(self, name: object) -> object:
        return "https://other.example" if name == "issuer" else super().__getitem__(name)


def test_contexts_jinja_reads_otherwise_are_rendered() -> None:
    """A name that is not a string (Jinja refuses it) or a dict subclass (Jinja copies its
    stored values): never taken as they are."""
    plain: dict[Any, Any] = {"issuer": "https://a.example", "jwks_uri": "j", "algs": []}
    plain["discovery"] = {}
    for context in ({**plain, 1: "x"}, _Context(plain)):
        assert templating._default_discovery(context) is None
        assert _outcome(SHORTCUT, context) == _outcome(RENDERED, context)


def test_a_users_default_template_is_rendered(tmp_path: Path) -> None:
    mine = tmp_path / "openid-configuration" / "default.json.j2"
    mine.parent.mkdir(parents=True)
    mine.write_text('{"issuer": {{ issuer|tojson }}, "mine": true}')
    renderer = Renderer(tmp_path)
    assert not renderer._bundled_discovery()
    context = {"issuer": "https://a.example", "jwks_uri": "j", "algs": [], "discovery": {}}
    assert renderer.json_object(DEFAULT_DISCOVERY, context) == {
        "issuer": "https://a.example",
        "mine": True,
    }


def test_a_user_folder_without_default_keeps_the_shortcut(tmp_path: Path) -> None:
    (tmp_path / "openid-configuration").mkdir()
    assert Renderer(tmp_path)._bundled_discovery()


def test_a_template_gone_before_its_text_is_checked_is_rendered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The text is read again after the template was loaded: gone by then, the loaded
    template is rendered (no shortcut, no traceback)."""
    renderer = Renderer()
    renderer._template(DEFAULT_DISCOVERY)

    def gone(*args: object) -> object:
        raise jinja2.TemplateNotFound(DEFAULT_DISCOVERY)

    assert renderer.env.loader is not None
    monkeypatch.setattr(renderer.env.loader, "get_source", gone)
    context = {"issuer": "https://a.example", "jwks_uri": "j", "algs": [], "discovery": {}}
    assert renderer.json_object(DEFAULT_DISCOVERY, context)["issuer"] == "https://a.example"
    assert renderer._bundled is False
