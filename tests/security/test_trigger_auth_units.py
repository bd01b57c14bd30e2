"""The pure pieces of HTTP trigger auth: manifest rules, API key comparison, JWT verification.

Every attack the end-to-end suite sends is checked here too, as input → verdict, plus properties
over arbitrary header values: whatever arrives, the checks refuse it with a fixed description
(``TokenRefused``) and never let a library exception through.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from security.jwt_keys import (
    AUDIENCE,
    ISSUER,
    Keys,
    es256,
    hs256_with_public_key,
    public_pem,
    rs256,
    tampered,
    unsigned,
)

from kfaas.gateway import trigger_tokens
from kfaas.gateway.trigger_tokens import (
    MAX_TOKEN_BYTES,
    SigningKey,
    TokenRefused,
    api_key_matches,
    bearer_token,
    jwt_authorizer,
    load_key_set,
    parse_api_keys,
    verify_token,
)
from kfaas.manifests import Function, ManifestError, parse_manifest

KEYS = Keys.generate()


def function_doc(**http: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "web"},
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {"image": "x:1"},
            "http": {"enabled": True, **http},
        },
    }


JWT = {"issuer": ISSUER, "audiences": [AUDIENCE], "jwksUrl": "https://idp.example/jwks.json"}


class TestManifest:
    def test_every_mode_with_its_configuration_parses(self) -> None:
        modes: list[dict[str, Any]] = [
            {"auth": "NONE"},
            {"auth": "API_KEY", "apiKey": {"secretRef": {"name": "keys", "key": "current"}}},
            {"auth": "API_KEY", "apiKey": {"file": "keys.txt"}},
            {"auth": "JWT", "jwt": JWT},
            {
                "auth": "JWT",
                "jwt": {**JWT, "jwksUrl": None, "keys": {"configMapRef": {"name": "k"}}},
            },
            {"auth": "AWS_IAM"},
        ]
        for http in modes:
            doc = function_doc(**{k: v for k, v in http.items()})
            if "jwt" in http:
                doc["spec"]["http"]["jwt"] = {k: v for k, v in http["jwt"].items() if v is not None}
            assert isinstance(parse_manifest(doc), Function)

    @pytest.mark.parametrize(
        ("http", "problem"),
        [
            ({"auth": "API_KEY"}, "spec.http: auth API_KEY requires apiKey"),
            ({"auth": "JWT"}, "spec.http: auth JWT requires jwt"),
            (
                {"auth": "NONE", "apiKey": {"file": "k"}},
                "spec.http: apiKey is only used with auth API_KEY, not NONE",
            ),
            (
                {"auth": "AWS_IAM", "jwt": JWT},
                "spec.http: jwt is only used with auth JWT, not AWS_IAM",
            ),
            (
                {"auth": "API_KEY", "apiKey": {}},
                "spec.http.apiKey: exactly one of secretRef, file must be set",
            ),
            (
                {"auth": "API_KEY", "apiKey": {"configMapRef": {"name": "k"}}},
                "spec.http.apiKey.configMapRef: is not a known field",
            ),
            (
                {"auth": "JWT", "jwt": {**JWT, "keys": {"file": "k.pem"}}},
                "spec.http.jwt: exactly one of jwksUrl, keys must be set",
            ),
            (
                {"auth": "JWT", "jwt": {**JWT, "audiences": []}},
                "spec.http.jwt.audiences: list should have at least 1 item after validation, not 0",
            ),
            (
                {"auth": "JWT", "jwt": {**JWT, "jwksUrl": "http://idp.example/jwks.json"}},
                'spec.http.jwt.jwksUrl: "http://idp.example/jwks.json" must be an https:// URL '
                "(http:// only to localhost or 127.0.0.1)",
            ),
            (
                {"auth": "JWT", "jwt": {**JWT, "jwksUrl": "http://localhost@evil.example/"}},
                'spec.http.jwt.jwksUrl: "http://localhost@evil.example/" must be an https:// URL '
                "(http:// only to localhost or 127.0.0.1)",
            ),
            (
                {"auth": "JWT", "jwt": {**JWT, "scopes": ['a" error="x']}},
                'spec.http.jwt.scopes[0]: "a\\" error=\\"x" must be printable ASCII without '
                "spaces, quotes or backslashes",
            ),
            (
                {"auth": "BASIC"},
                'spec.http.auth: "BASIC" must be one of NONE, API_KEY, JWT, AWS_IAM',
            ),
        ],
    )
    def test_rules_name_the_field(self, http: dict[str, Any], problem: str) -> None:
        with pytest.raises(ManifestError) as caught:
            parse_manifest(function_doc(**http))
        assert caught.value.problems == [f"<string>: {problem}"]

    def test_key_files_are_resolved_against_the_manifest(self, tmp_path: Any) -> None:
        doc = function_doc(auth="JWT", jwt={**JWT, "jwksUrl": None} | {"keys": {"file": "k.pem"}})
        doc["spec"]["http"]["jwt"].pop("jwksUrl")
        fn = parse_manifest(doc, source=str(tmp_path / "fns.yaml"))
        assert isinstance(fn, Function) and fn.spec.http.jwt and fn.spec.http.jwt.keys
        assert fn.spec.http.jwt.keys.file == str(tmp_path / "k.pem")


class TestApiKeys:
    def test_lines_comments_and_blanks(self) -> None:
        assert parse_api_keys(["one\n\n# old: zero\n  two  \n", "three"]) == ["one", "two", "three"]

    def test_matches_only_exact_keys(self) -> None:
        keys = ["k-123456", "k-abcdef"]
        assert api_key_matches("k-abcdef", keys)
        for wrong in (None, "", "k-abcde", "k-abcdefg", "K-ABCDEF", "k-abcdef\n", "x" * 5000):
            assert not api_key_matches(wrong, keys)
        assert not api_key_matches("anything", [])

    def test_every_key_is_compared_whatever_matches(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Constant time: no early exit on a match, and compare_digest over equal-length digests.
        calls: list[tuple[int, int]] = []
        real = hmac.compare_digest

        def spy(a: bytes, b: bytes) -> bool:
            calls.append((len(a), len(b)))
            return real(a, b)

        monkeypatch.setattr(hmac, "compare_digest", spy)  # the module trigger_tokens calls
        keys = ["first", "second-key", "third-key-much-longer-than-the-others"]
        assert api_key_matches("first", keys)
        assert api_key_matches("nope", keys) is False
        assert len(calls) == 2 * len(keys)
        assert set(calls) == {(32, 32)}


def verify(token: str, keys: list[SigningKey] | None = None, **kw: Any) -> dict[str, Any]:
    key_set = keys if keys is not None else load_key_set([json.dumps(KEYS.jwks())])
    return verify_token(token, key_set, issuer=kw.get("issuer", ISSUER), audiences=[AUDIENCE])


def refused(token: str, keys: list[SigningKey] | None = None) -> str:
    with pytest.raises(TokenRefused) as caught:
        verify(token, keys)
    return caught.value.description


class TestJwt:
    def test_rs256_and_es256_from_a_jwks(self) -> None:
        assert verify(rs256(KEYS.rsa))["sub"] == "alice"
        assert verify(es256(KEYS.ec))["sub"] == "alice"

    def test_pem_keys_without_kid(self) -> None:
        keys = load_key_set([KEYS.ec_pem() + "\n" + KEYS.rsa_pem()])
        assert [k.algorithm for k in keys] == ["ES256", "RS256"]
        assert verify(es256(KEYS.ec, kid=None), keys)["sub"] == "alice"
        assert verify(rs256(KEYS.rsa, kid="whatever"), keys)["sub"] == "alice"

    def test_unusable_keys_are_skipped(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
        hmac_jwk = {"kty": "oct", "k": "c2VjcmV0", "kid": "h"}
        assert (
            load_key_set([public_pem(small), public_pem(p384), json.dumps({"keys": [hmac_jwk]})])
            == []
        )
        assert load_key_set(["not a key", "{", json.dumps({"keys": "x"}), json.dumps([1])]) == []

    @pytest.mark.parametrize(
        ("make", "description"),
        [
            (lambda: unsigned(), "signing method is not allowed"),
            (lambda: hs256_with_public_key(KEYS.rsa_pem()), "signing method is not allowed"),
            (lambda: rs256(KEYS.rsa, exp=1), "token has expired"),
            (lambda: rs256(KEYS.rsa, nbf=2**31), "token is not valid yet"),
            (lambda: rs256(KEYS.rsa, iss="https://evil.example"), "invalid issuer"),
            (lambda: rs256(KEYS.rsa, aud="api://other"), "invalid audience"),
            (lambda: rs256(KEYS.rsa, aud=None), "invalid audience"),
            (lambda: rs256(KEYS.rsa, exp=None), "token lacks a required claim"),
            (lambda: rs256(KEYS.attacker), "signature is invalid"),
            (lambda: rs256(KEYS.attacker, kid="unknown"), "no key matches the token"),
            (lambda: es256(KEYS.ec, kid="rsa-1"), "no key matches the token"),
            (lambda: tampered(rs256(KEYS.rsa), sub="admin"), "signature is invalid"),
            (lambda: "a.b.c", "malformed token"),
            (lambda: rs256(KEYS.rsa, exp="soon"), "malformed token"),
        ],
    )
    def test_attacks_are_refused(self, make: Any, description: str) -> None:
        assert refused(make()) == description

    def test_leeway_is_small(self) -> None:
        import time

        assert verify(rs256(KEYS.rsa, exp=int(time.time()) - 10))["sub"] == "alice"
        assert refused(rs256(KEYS.rsa, exp=int(time.time()) - 120)) == "token has expired"

    def test_access_tokens_may_name_the_client_instead_of_an_audience(self) -> None:
        assert verify(rs256(KEYS.rsa, aud=None, client_id=AUDIENCE))["client_id"] == AUDIENCE
        assert verify(rs256(KEYS.rsa, aud=["x", AUDIENCE]))["sub"] == "alice"

    def test_bearer_header_forms(self) -> None:
        token = rs256(KEYS.rsa)
        assert bearer_token(f"Bearer {token}") == token
        assert bearer_token(f"bearer  {token} ") == token
        assert bearer_token(token) == token
        for bad in (None, "", "Bearer", "Bearer a.b", "Basic dXNlcjpwYXNz", "Bearer é.é.é"):
            with pytest.raises(TokenRefused):
                bearer_token(bad)
        with pytest.raises(TokenRefused, match="too large"):
            bearer_token("Bearer " + "a" * MAX_TOKEN_BYTES)

    def test_claims_reach_the_handler_as_api_gateway_passes_them(self) -> None:
        authorizer = jwt_authorizer(
            {"sub": "alice", "exp": 1700000000, "aud": ["a", "b"], "admin": True, "scope": "x y"}
        )
        assert authorizer == {
            "claims": {"sub": "alice", "exp": "1700000000", "aud": "[a b]", "admin": "true",
                       "scope": "x y"},
            "scopes": ["x", "y"],
        }  # fmt: skip
        assert jwt_authorizer({"scp": ["r"]})["scopes"] == ["r"]
        assert jwt_authorizer({"sub": "s"})["scopes"] is None

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
    def test_any_header_value_is_refused_cleanly(self, value: str) -> None:
        with pytest.raises(TokenRefused):
            verify(bearer_token(value))

    @settings(max_examples=200, deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(["alg", "kid", "typ", "crit", "jku"]),
            st.sampled_from(["RS256", "ES256", "none", "HS256"])
            | st.text(max_size=20)
            | st.integers()
            | st.none()
            | st.lists(st.integers(), max_size=2),
            max_size=4,
        ),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=5),
    )
    def test_any_forged_structure_is_refused_cleanly(
        self, header: dict[str, Any], payload: dict[str, Any]
    ) -> None:
        from security.jwt_keys import segment

        try:
            forged = f"{segment(header)}.{segment(payload)}.c2ln"
        except (TypeError, ValueError):
            return
        with pytest.raises(TokenRefused):
            verify(forged)


class TestVerifiedTokenCache:
    """A reused token skips the signature check, but never across functions, configs or expiry."""

    @pytest.fixture
    def setup(self, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
        from kfaas.gateway import trigger_auth
        from kfaas.gateway.trigger_keys import LocalKeyFiles

        (tmp_path / "k.pem").write_text(KEYS.rsa_pem())
        calls: list[str] = []
        real = trigger_tokens.verify_token

        def counting(token: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            calls.append(token)
            return real(token, *args, **kwargs)

        monkeypatch.setattr(trigger_auth, "verify_token", counting)
        return trigger_auth, trigger_auth.TriggerAuth(LocalKeyFiles()), tmp_path, calls, monkeypatch

    @staticmethod
    def jwt_function(folder: Any, name: str, audience: str = AUDIENCE) -> Function:
        jwt = {"issuer": ISSUER, "audiences": [audience], "keys": {"file": "k.pem"}}
        fn = parse_manifest(
            function_doc(auth="JWT", jwt=jwt) | {"metadata": {"name": name}},
            source=str(folder / "fns.yaml"),
        )
        assert isinstance(fn, Function)
        return fn

    async def test_reuse_across_functions_configs_and_time(self, setup: Any) -> None:
        from aiohttp.test_utils import make_mocked_request

        module, auth, folder, calls, monkeypatch = setup
        first, second = self.jwt_function(folder, "a"), self.jwt_function(folder, "b")
        token = rs256(KEYS.rsa, kid=None)
        request = make_mocked_request("GET", "/", headers={"Authorization": f"Bearer {token}"})

        async def status(fn: Function) -> int:
            verdict = await auth.check(fn, request, "r")
            return 200 if verdict.refusal is None else verdict.refusal.status

        assert [await status(first), await status(first)] == [200, 200]
        assert len(calls) == 1
        assert await status(second) == 200  # another function: verified for itself
        assert len(calls) == 2
        changed = self.jwt_function(folder, "a", audience="api://other")
        assert await status(changed) == 401  # a changed config does not inherit the cache
        assert len(calls) == 3
        later = module.time.time() + 3600
        monkeypatch.setattr(module.time, "time", lambda: later)
        await status(first)  # past exp + leeway: checked again, never served from the cache
        assert len(calls) == 4
        await auth.close()
