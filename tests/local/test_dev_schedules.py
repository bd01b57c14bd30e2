"""`kfaas dev` reads Schedules from its files and applies them into its store like the other
kinds (ADR 026); the engine that fires them is tested in tests/scheduler and tests/e2e."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfaas import object_store as store
from kfaas.cli.dev_files import APPLIED_FROM, apply_manifests
from kfaas.cli.dev_schedules import load_schedules
from kfaas.code_folder import DirectoryCodeStore
from kfaas.dir_store import DirectoryObjectStore
from kfaas.manifests import ManifestError, load_manifests

FUNCTION = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: ticks}
spec: {runtime: python3.11, handler: app.handler, code: {inline: {app.py: "x = 1"}}}
"""
SCHEDULE = """
apiVersion: kfaas.dev/v1alpha1
kind: Schedule
metadata: {name: nightly, namespace: team-a}
spec:
  scheduleExpression: cron(0 2 * * ? *)
  scheduleExpressionTimezone: Europe/Paris
  target: {functionName: ticks, input: '{"job": "report"}'}
"""


def test_schedules_are_read_beside_the_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(FUNCTION + "---" + SCHEDULE)
    # The Function loader leaves the kind to the Schedule loader, and the other way round.
    assert [m.kind for m in load_manifests([tmp_path])] == ["Function"]
    [schedule] = load_schedules([tmp_path])
    assert schedule.key == "team-a/nightly"
    assert schedule.source == f"{tmp_path / 'app.yaml'} (document 2)"
    assert schedule.spec.target.input == '{"job": "report"}'


def test_a_wrong_schedule_is_refused_naming_its_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(SCHEDULE.replace("cron(0 2 * * ? *)", "rate(0 minutes)"))
    with pytest.raises(ManifestError) as refused:
        load_schedules([tmp_path])
    assert str(tmp_path / "bad.yaml") in str(refused.value)
    assert "scheduleExpression" in str(refused.value)
    (tmp_path / "bad.yaml").write_text(SCHEDULE + "---" + SCHEDULE)
    with pytest.raises(ManifestError, match="already defined"):
        load_schedules([tmp_path])
    # A kind of the group that nothing loads is still reported, not skipped.
    (tmp_path / "bad.yaml").write_text(SCHEDULE.replace("kind: Schedule", "kind: Schedul"))
    with pytest.raises(ManifestError, match="Schedul"):
        load_manifests([tmp_path])


async def test_schedules_are_applied_and_removed_with_their_files(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(FUNCTION + "---" + SCHEDULE)
    code = DirectoryCodeStore(tmp_path / "state" / "code")
    with DirectoryObjectStore.open(tmp_path / "state") as objects:
        manifests = [*load_manifests([tmp_path / "app.yaml"]), *load_schedules([tmp_path])]
        changed = await apply_manifests(objects, code, manifests)
        assert (store.SCHEDULES, "team-a", "nightly") in changed
        stored = await objects.get(store.SCHEDULES, "team-a", "nightly")
        assert stored["metadata"]["annotations"][APPLIED_FROM].endswith("(document 2)")
        assert stored["spec"]["scheduleExpressionTimezone"] == "Europe/Paris"
        # Applying the same files again changes nothing; without the Schedule it is deleted.
        assert await apply_manifests(objects, code, manifests) == []
        (tmp_path / "app.yaml").write_text(FUNCTION)
        changed = await apply_manifests(objects, code, load_manifests([tmp_path / "app.yaml"]))
        assert changed == [(store.SCHEDULES, "team-a", "nightly")]
        with pytest.raises(store.ObjectNotFound):
            await objects.get(store.SCHEDULES, "team-a", "nightly")
