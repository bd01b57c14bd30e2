"""Pytest fixture for kfaas's images (services.images): built before the first test, cached.

Registered next to services.fixtures (tests/conftest.py). A test that takes `kfaas_images` gets the
pause image and, per Python the runtimes offer (3.11, 3.13), the Debian base and the kfaas image
built from the working tree; it is marked `images`. The builds run once the tests are collected,
like the services' builds, so a cold build (debootstrap, buildah: minutes) is not cut short by a
test's timeout; a tree that did not change since the last build reuses the cached archives. The
fixture skips where debootstrap or buildah cannot run (not root, not installed), and fails
instead when CI=true.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from services import images
from services.base import MissingDependency, ServiceError
from services.debian import RELEASES
from services.markers import needs

FIXTURE = "kfaas_images"


@dataclass(frozen=True)
class BuiltImages:
    pause: images.Image
    base: dict[str, images.Image]  # by Python version ("3.11", "3.13")
    kfaas: dict[str, images.Image]


_built: list[BuiltImages] = []
_failure: list[ServiceError] = []


def build() -> BuiltImages:
    pythons = sorted(RELEASES)
    return BuiltImages(
        pause=images.pause_image(),
        base={python: images.base_image(python) for python in pythons},
        kfaas={python: images.kfaas_image(python) for python in pythons},
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the images before any test (and its timeout) starts, if a selected test wants them."""
    wanted = any(needs(item, FIXTURE) for item in session.items)
    if not wanted or session.config.option.collectonly:
        return
    capture = session.config.pluginmanager.get_plugin("capturemanager")
    try:
        if capture is not None:
            with capture.global_and_fixture_disabled():
                _built.append(build())
        else:
            _built.append(build())
    except ServiceError as failure:
        _failure.append(failure)
    except Exception as failure:  # a bug in a build fails the image tests, not the whole run
        _failure.append(ServiceError(f"building the images failed: {failure!r}"))


@pytest.fixture(scope="session")
def kfaas_images() -> BuiltImages:
    """The pause image and, per Python, the base and kfaas images (`.archive`, `.ref`, `.size`)."""
    try:
        if _failure:
            raise _failure[0]
        return _built[0] if _built else build()
    except MissingDependency as missing:
        reason = f"images: {missing}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and images cannot be built: {reason}", pytrace=False)
        pytest.skip(reason)
