"""Issuer URLs: every valid one maps to a file inside the output folder; no invalid one does."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from wellknown_build import tree, urls

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_host = st.lists(_label, min_size=1, max_size=4).map(".".join)
_segment = st.from_regex(r"[A-Za-z0-9._~!$&'()*+,;=:@-]{1,12}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)


@given(host=_host, segments=st.lists(_segment, max_size=4), slash=st.booleans())
def test_valid_issuers_map_inside_out(host: str, segments: list[str], slash: bool) -> None:
    path = "/".join(segments)
    issuer = f"https://{host}" + (f"/{path}" if path else "") + ("/" if slash else "")
    assert urls.check_https_url(issuer, what="issuer") == []
    expected = (
        f"{host}/{path}/.well-known/openid-configuration"
        if path
        else f"{host}/.well-known/openid-configuration"
    )
    assert urls.tree_path(urls.discovery_url(issuer)) == expected
    assert urls.tree_path(urls.default_jwks_uri(issuer)) == expected.replace(
        "openid-configuration", "jwks.json"
    )
    target = tree._Paths(Path("/srv/out"))(expected)
    assert target.startswith("/srv/out/") and "/../" not in target


@given(
    host=_host,
    before=st.lists(_segment, max_size=2),
    bad=st.sampled_from([".", "..", "", "a b", "%2e%2e", "é"]),
)
def test_invalid_segments_are_refused(host: str, before: list[str], bad: str) -> None:
    issuer = f"https://{host}/" + "/".join([*before, bad, "x"])
    assert urls.check_https_url(issuer, what="issuer") != []
