"""What runs a Function's `runtime`: the image in a cluster, the interpreter in `kfaas dev`.

A Function's `runtime: python3.13` is a promise that its handler runs on Python 3.13, and
`GetFunction`, `AWS_EXECUTION_ENV` and the handler's own `sys.version` all repeat it. The kfaas
image carries one interpreter, so each Python runtime needs an image of its own, named in the
chart's `functions.runtimeImages`; a runtime without one is refused with the value to set rather
than run on another interpreter (ADR 016). Plain functions, shared by the operator and the local
backend, so the rule and its messages are written once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

PYTHON_RUNTIMES = ("python3.11", "python3.12", "python3.13")
PROVIDED = "provided"
RUNTIMES = (*PYTHON_RUNTIMES, PROVIDED)
# The Python the kfaas image is built on (the Dockerfile's PYTHON_IMAGE): the chart's main image
# serves this runtime, and `provided` (whose bootstrap brings its own language), by default.
IMAGE_RUNTIME = "python3.11"
# Where a platform team names the image of each runtime (charts/kfaas/values.yaml).
CHART_VALUE = "functions.runtimeImages"
# The operator's variable the chart renders that value into, as a JSON object.
IMAGES_ENV = "KFAAS_RUNTIME_IMAGES"


def python_version(runtime: str) -> tuple[int, int] | None:
    """(3, 13) for `python3.13`; None for `provided`, which names no interpreter."""
    if runtime not in PYTHON_RUNTIMES:
        return None
    major, minor = runtime.removeprefix("python").split(".")
    return int(major), int(minor)


def runtime_of(version: tuple[int, int]) -> str:
    """The runtime an interpreter of this (major, minor) version serves: `python3.11`."""
    return f"python{version[0]}.{version[1]}"


def runtime_images(raw: str, default_image: str) -> dict[str, str]:
    """The image of each runtime from ``KFAAS_RUNTIME_IMAGES`` (a JSON object, as the chart renders
    ``functions.runtimeImages``) over the defaults: the main image for `python3.11` and `provided`.

    A runtime set to null or "" has no image. Raises ValueError naming what is wrong.
    """
    images = {IMAGE_RUNTIME: default_image, PROVIDED: default_image}
    if not raw.strip():
        return images
    try:
        given = json.loads(raw)
    except ValueError:
        raise ValueError(f"{IMAGES_ENV} must be a JSON object of runtime → image") from None
    if not isinstance(given, dict):
        raise ValueError(f"{IMAGES_ENV} must be a JSON object of runtime → image")
    for runtime, image in given.items():
        if runtime not in RUNTIMES:
            expected = ", ".join(RUNTIMES)
            raise ValueError(f"{IMAGES_ENV}: {runtime!r} is not a runtime (expected {expected})")
        if image is None or image == "":
            images.pop(runtime, None)
        elif isinstance(image, str) and image.strip() == image and image.isprintable():
            images[runtime] = image
        else:
            raise ValueError(f"{IMAGES_ENV}: the image of {runtime} must be an image reference")
    return images


def function_image(runtime: str, code_image: str | None, images: Mapping[str, str]) -> str | None:
    """The image a function's pods run, or None when its runtime has none.

    A `code.image` function brings its own image, whatever its runtime: that image's interpreter
    is the one its handler runs on, and the runtime server in it refuses to start when that is not
    the interpreter `runtime` names (so a mismatch shows in the pod's log, never as a lie).
    """
    if code_image:
        return code_image
    return images.get(runtime)


def missing_image_message(runtime: str) -> str:
    """What a Function whose runtime has no image is told (its Ready condition's message)."""
    escaped = runtime.replace(".", "\\.")
    version = python_version(runtime)
    what = f"kfaas built on Python {version[0]}.{version[1]}" if version else "kfaas"
    return (
        f"runtime {runtime} has no image: set {CHART_VALUE}.{runtime} in the chart values "
        f"(helm --set {CHART_VALUE}.{escaped}=IMAGE, an image of {what}) and restart the "
        "operator, or give the function its own code.image"
    )
