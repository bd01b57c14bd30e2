"""Secret and ConfigMap documents beside the manifests, as `kfaas dev` reads them.

`data` is base64 and `stringData` text, merged as the API server does; a bad document is one
ManifestError naming the file and the field; the book is read as it is at each call, so a Secret
fixed in a file reaches the pollers at their next connect.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kfaas.manifests import EnvFromSource, ManifestError, load_manifests
from kfaas.secret_documents import (
    EnvFromMissing,
    SecretBook,
    environment_from,
    load_config_maps,
    load_secrets,
    parse_secret,
)

CREDENTIALS = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: kafka-credentials
  namespace: media
type: kubernetes.io/basic-auth
data:
  username: {base64.b64encode(b"alice").decode()}
  password: {base64.b64encode(b"old").decode()}
stringData:
  password: new
---
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata:
  name: echo
spec:
  runtime: python3.12
  handler: app.handler
  code:
    inline:
      app.py: "def handler(event, context): return event"
"""


def test_secrets_are_read_beside_the_manifests_and_skipped_by_them(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(CREDENTIALS)
    (tmp_path / "ca.yml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: kafka-ca}\nstringData:\n  ca.crt: PEM\n"
    )
    (tmp_path / "other.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    secrets = load_secrets([tmp_path])
    assert secrets == {
        ("media", "kafka-credentials"): {"username": b"alice", "password": b"new"},
        ("default", "kafka-ca"): {"ca.crt": b"PEM"},
    }
    assert [m.kind for m in load_manifests([tmp_path])] == ["Function"]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"metadata": {"name": "Bad_Name"}}, "metadata.name 'Bad_Name'"),
        ({"metadata": {"name": "s"}, "data": {"k": "not base64!"}}, "data.k is not base64"),
        ({"metadata": {"name": "s"}, "data": {"a key": "eA=="}}, "'a key' is not a valid"),
        ({"metadata": {"name": "s"}, "stringData": {"k": 1}}, "stringData.k must be a string"),
        ({"metadata": {"name": "s"}, "data": ["x"]}, "data must be a mapping"),
    ],
)
def test_a_bad_secret_names_the_field(document: dict[str, object], problem: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_secret({"apiVersion": "v1", "kind": "Secret", **document}, "s.yaml")
    assert any(
        problem in line and line.startswith("s.yaml: Secret:") for line in caught.value.problems
    )


def test_a_secret_defined_twice_is_refused(tmp_path: Path) -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: twice}\n"
    (tmp_path / "a.yaml").write_text(secret)
    (tmp_path / "b.yaml").write_text(secret)
    with pytest.raises(ManifestError, match="already defined in"):
        load_secrets([tmp_path])


async def test_the_book_is_read_as_it_is_at_each_call() -> None:
    book = SecretBook({("media", "creds"): {"password": b"old"}})
    read = book.reader("media")
    assert await read("creds") == {"password": b"old"}
    assert await book.reader("other")("creds") is None
    book.replace({("media", "creds"): {"password": b"new"}})
    assert await read("creds") == {"password": b"new"}


def test_config_maps_are_read_and_env_from_follows_the_kubelet(tmp_path: Path) -> None:
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: media}\n"
        "data: {COLOR: blue, MODE: configmap, 1st: skipped}\n"
    )
    config_maps = load_config_maps([tmp_path])
    assert config_maps == {
        ("media", "settings"): {"COLOR": b"blue", "MODE": b"configmap", "1st": b"skipped"}
    }
    book = SecretBook({("media", "creds"): {"MODE": b"secret"}}, config_maps)
    sources = [
        EnvFromSource.model_validate({"configMapRef": {"name": "settings"}}),
        EnvFromSource.model_validate({"secretRef": {"name": "creds"}}),
        EnvFromSource.model_validate({"secretRef": {"name": "creds"}, "prefix": "S_"}),
        EnvFromSource.model_validate({"secretRef": {"name": "gone", "optional": True}}),
    ]
    assert environment_from(sources, "media", book) == {
        "COLOR": "blue",
        "MODE": "secret",  # a later source wins a name
        "S_MODE": "secret",
    }
    missing = [EnvFromSource.model_validate({"configMapRef": {"name": "gone"}})]
    with pytest.raises(EnvFromMissing, match="ConfigMap media/gone does not exist"):
        environment_from(missing, "media", book)
