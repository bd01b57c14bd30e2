"""`kfaas dev --state DIR` keeps what was created across restarts (issue 11, point 5; ADR 024).

The real `kfaas dev` as a subprocess, boto3 as the client: a function created through the
management API survives a restart with the same RevisionId and runs its uploaded zip; one state
folder serves one `kfaas dev`; manifests are applied like `kubectl apply` (one removed from the
files is deleted, API-created ones stay); a code edit of a `code.path` function is a new
RevisionId.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from devserver import KFAAS, dev_server, make_lambda_client
from waiting import eventually

ROLE = "arn:aws:iam::default:role/default"
FAST = {"Delay": 0.2, "MaxAttempts": 100}
MANIFEST = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: NAME}
spec:
  runtime: python3.11
  handler: app.handler
  code: {path: ./src}
"""
CODE = "def handler(event, context):\n    return {'code': 'CODE'}\n"


def zipped(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("app.py", CODE.replace("CODE", code))
    return buffer.getvalue()


def invoke(client: Any, name: str) -> dict[str, Any]:
    answer = client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in answer, answer
    result: dict[str, Any] = json.loads(answer["Payload"].read())
    return result


def names(client: Any) -> list[str]:
    return sorted(f["FunctionName"] for f in client.list_functions()["Functions"])


def project(folder: Path, *functions: str, code: str = "file") -> Path:
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "app.py").write_text(CODE.replace("CODE", code))
    text = "---".join(MANIFEST.replace("NAME", name) for name in functions)
    (folder / "functions.yaml").write_text(text)
    return folder


def test_a_function_created_through_the_api_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    folder = project(tmp_path / "p")
    with dev_server([folder], args=["--state", str(state)]) as dev:
        assert f"state: {state}" in dev.output()
        client = make_lambda_client(dev.url)
        created = client.create_function(
            FunctionName="uploaded",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": zipped("uploaded")},
        )
        client.get_waiter("function_active_v2").wait(FunctionName="uploaded", WaiterConfig=FAST)
        assert invoke(client, "uploaded") == {"code": "uploaded"}
        before = client.get_function_configuration(FunctionName="uploaded")
        assert before["RevisionId"] == created["RevisionId"]
        assert (before["State"], before["CodeSha256"]) == ("Active", created["CodeSha256"])

    with dev_server([folder], args=["--state", str(state)]) as dev:
        client = make_lambda_client(dev.url)
        after = client.get_function_configuration(FunctionName="uploaded")
        for field in ("RevisionId", "LastModified", "CodeSha256", "CodeSize", "State"):
            assert after[field] == before[field], field
        assert invoke(client, "uploaded") == {"code": "uploaded"}


def test_one_state_folder_serves_one_kfaas_dev(tmp_path: Path) -> None:
    state = tmp_path / "state"
    folder = project(tmp_path / "p")
    with dev_server([folder], args=["--state", str(state)]):
        second = subprocess.run(
            [KFAAS, "dev", str(folder), "--port", "0", "--state", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert second.returncode == 2, second.stdout + second.stderr
    [line] = second.stderr.splitlines()
    assert line.startswith("kfaas dev: another kfaas dev uses the state directory"), line
    assert "serving on" not in second.stdout


def test_a_state_path_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = subprocess.run(
        [KFAAS, "dev", str(tmp_path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KFAAS_DEV_STATE": str(tmp_path / "file")},
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"kfaas dev: KFAAS_DEV_STATE: {tmp_path / 'file'} is not a folder "
        "(the state folder, e.g. ./.kfaas)"
    ]
    below = tmp_path / "file" / "state"  # a folder that cannot be made
    done = subprocess.run(
        [KFAAS, "dev", str(tmp_path), "--port", "0", "--state", str(below)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"kfaas dev: cannot use the state folder {below}: "), line


def test_manifests_are_applied_and_removed_while_api_functions_stay(tmp_path: Path) -> None:
    state = tmp_path / "state"
    folder = project(tmp_path / "p", "kept", "dropped")
    with dev_server([folder], args=["--state", str(state)]) as dev:
        client = make_lambda_client(dev.url)
        client.create_function(
            FunctionName="api",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": zipped("api")},
        )
        assert names(client) == ["api", "dropped", "kept"]
        project(folder, "kept")
        eventually(lambda: names(client) == ["api", "kept"], within=20, what="dropped deleted")
        assert invoke(client, "kept") == {"code": "file"}

    # Restarted on the same files: the API's function is still there, the dropped one is not.
    with dev_server([folder], args=["--state", str(state)]) as dev:
        client = make_lambda_client(dev.url)
        assert names(client) == ["api", "kept"]
        client.get_waiter("function_active_v2").wait(FunctionName="api", WaiterConfig=FAST)
        assert invoke(client, "api") == {"code": "api"}
    # Restarted without the files: their objects go, the API's stays.
    (tmp_path / "empty").mkdir()
    with dev_server([tmp_path / "empty"], args=["--state", str(state)]) as dev:
        assert names(make_lambda_client(dev.url)) == ["api"]


def test_a_code_edit_is_a_new_revision_and_reloads(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", "edited")
    with dev_server([folder]) as dev:
        client = make_lambda_client(dev.url)
        client.get_waiter("function_active_v2").wait(FunctionName="edited", WaiterConfig=FAST)
        first = client.get_function_configuration(FunctionName="edited")
        assert invoke(client, "edited") == {"code": "file"}
        project(folder, "edited", code="edited")
        eventually(
            lambda: invoke(client, "edited") == {"code": "edited"}, within=20, what="reloaded"
        )
        second = client.get_function_configuration(FunctionName="edited")
        assert second["RevisionId"] != first["RevisionId"]
        assert second["CodeSha256"] != first["CodeSha256"]
        assert second["LastModified"] >= first["LastModified"]
        client.get_waiter("function_updated_v2").wait(FunctionName="edited", WaiterConfig=FAST)


def test_the_default_state_beside_the_code_is_neither_manifest_nor_code(tmp_path: Path) -> None:
    # `kfaas dev .` with `code: {path: .}` and ./.kfaas: its writes must not look like edits.
    (tmp_path / "app.py").write_text(CODE.replace("CODE", "here"))
    (tmp_path / "functions.yaml").write_text(MANIFEST.replace("./src", ".").replace("NAME", "here"))
    env = {"KFAAS_DEV_STATE": str(tmp_path / ".kfaas")}
    with dev_server([tmp_path], env=env) as dev:
        client = make_lambda_client(dev.url)
        client.get_waiter("function_active_v2").wait(FunctionName="here", WaiterConfig=FAST)
        first = client.get_function_configuration(FunctionName="here")
        del first["ResponseMetadata"]
        assert invoke(client, "here") == {"code": "here"}
        time.sleep(2.5)  # the watcher looks every second
        again = client.get_function_configuration(FunctionName="here")
        del again["ResponseMetadata"]
        assert again == first
        assert "reloaded" not in dev.output()
    assert (tmp_path / ".kfaas" / "objects" / "functions" / "default" / "here.yaml").exists()


def test_a_state_folder_among_the_manifests_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", "first")
    done = subprocess.run(
        [KFAAS, "dev", str(folder), "--port", "0", "--state", str(folder / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"kfaas dev: the state folder {folder / 'state'} is in {folder}"), line


def test_an_api_function_whose_runtime_is_not_here_fails_and_kfaas_dev_serves_on(
    tmp_path: Path,
) -> None:
    # A python3.X on PATH that is not one (exit 127), so that runtime has no interpreter here.
    own = f"python{sys.version_info.major}.{sys.version_info.minor}"
    other = "python3.12" if own != "python3.12" else "python3.13"
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / other).write_text("#!/bin/sh\nexit 127\n")
    (shims / other).chmod(0o755)
    env = {"PATH": f"{shims}{os.pathsep}/usr/bin{os.pathsep}/bin"}
    with dev_server([project(tmp_path / "p", "here")], env=env) as dev:
        client = make_lambda_client(dev.url)
        client.create_function(
            FunctionName="elsewhere",
            Runtime=other,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": zipped("elsewhere")},
        )

        def failed() -> dict[str, Any] | None:
            answer: dict[str, Any] = client.get_function_configuration(FunctionName="elsewhere")
            return answer if answer["State"] == "Failed" else None

        configuration = eventually(failed, within=20, what="State Failed")
        assert configuration["StateReasonCode"] == "InvalidRuntime"
        assert f"runtime {other} needs Python" in configuration["StateReason"]
        assert invoke(client, "here") == {"code": "file"}  # the rest is served as before
