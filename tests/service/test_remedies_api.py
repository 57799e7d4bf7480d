"""``/v1/experiments/{id}/remedies`` on a real API and Redis, with finished jobs staged in the
store (no worker: twins stay queued until a test finishes them): the refusals (404, 409, 422,
another key's job), the twins as a sweep whose specs are the job's with exactly each fix's
edits, one launch per job (also under concurrent POSTs), the outcome and its ranking, and the
report's before/after table."""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import LiveServer, make_settings
from worker.core.design import design_facts
from worker.core.findings.remedies import apply_edits, fixes_for
from worker.core.result import ExperimentResult
from worker.core.spec import ExperimentSpec

DB = 0
ALICE, BOB = "alice-remedies-5b1e", "bob-remedies-a07c"
PROBLEM = "application/problem+json"
SPEC = {
    "spec_version": 1, "name": "depth-4 sigmoid",
    "model": {"family": "mlp", "depth": 4, "width": 8, "activation": "sigmoid"},
    "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "training": {"steps": 5, "batch_size": 16, "device": "cpu", "seed": 3},
}
Doc = dict[str, Any]
VANISHING, SATURATED, FROZEN = "vanishing_gradients_at_init", "saturated_units", "frozen_layers"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(redis_server):
    settings = make_settings(redis_server, DB, auth_enabled=True, api_keys=[
        {"name": "alice", "sha256": sha(ALICE)}, {"name": "bob", "sha256": sha(BOB)},
    ])
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def http(server, redis_server):
    redis_server.client(DB).flushdb()
    with server.client() as client:
        client.headers.update(as_(ALICE))
        yield client


def finding(code: str, severity: str, fixes: list[Doc] | None = None) -> Doc:
    """A finding as the worker writes it, with the fixes the worker would attach."""
    spec = ExperimentSpec.model_validate(SPEC)
    if fixes is None:
        doc = spec.model_dump(mode="json", exclude_none=True)
        fixes = [fix.public() for fix in fixes_for(code, doc, design_facts(spec))]
    return {"code": code, "severity": severity, "message": f"{code} fired", "evidence": {},
            "suggestion": "; ".join(f["label"] for f in fixes), "fixes": fixes}


def result(result_doc, *, loss: float = 0.70, ratio: float = 1e-6, findings=()) -> Doc:
    """A result as the worker writes it (checked against the result schema), with its final
    validation loss, step-0 end-to-end gradient ratio and findings."""
    doc: Doc = result_doc()
    doc["summary"]["final_val_loss"] = loss
    probe = {"step": 0, "loss": 0.69, "activation_grad_rms": [ratio, 1.0], "gains": [ratio],
             "gain_geomean": ratio, "gain_db": 20 * math.log10(ratio), "end_to_end_ratio": ratio,
             "end_to_end_verdict": "vanishing" if ratio < 1e-2 else "healthy",
             "weight_norm": [1.0, 1.0], "weight_grad_norm": [ratio, 1.0],
             "grad_to_weight_ratio": [ratio, 1.0], "update_to_weight": None}
    probe["verdict"] = probe["end_to_end_verdict"]
    doc["gradient_flow"] = {"layers": ["h0", "h1"], "weight_layers": ["0.linear", "2.linear"],
                            "probe_steps": [0], "probes": [probe], "mean_field": None,
                            "recurrent": None}
    doc["findings"] = list(findings)
    ExperimentResult.model_validate(doc)
    return doc


def original_findings() -> list[Doc]:
    """Vanishing (critical) and saturated (warning) share the ReLU + He and residual fixes; an
    info's fix is not tried."""
    return [finding(VANISHING, "critical"), finding(SATURATED, "warning"),
            finding(FROZEN, "warning"),
            finding("interpolation_barrier", "info",
                    [{"label": "wider", "edits": [{"path": "model.width", "value": 16}]}])]


def stage(http, server, status: str = "succeeded", res: Doc | None = None) -> str:
    """A job submitted as alice, then moved to ``status`` in the store."""
    job_id: str = http.post("/v1/experiments", json=SPEC).json()["id"]
    store = server.app.state.store
    if status != "queued":
        store.start(job_id, worker="w")
        if status != "running":
            store.finish(job_id, status, attempt=1, result=res,
                         error=None if status == "succeeded" else "boom")
    return job_id


def finish(server, job_id: str, res: Doc) -> None:
    store = server.app.state.store
    store.start(job_id, worker="w")
    store.finish(job_id, "succeeded", attempt=1, result=res)


def problem(response, status: int) -> Doc:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: Doc = response.json()
    return body


def expected_fixes() -> dict[str, tuple[list[Doc], list[str]]]:
    """label -> (edits, targeted codes) of the distinct fixes of ``original_findings``."""
    out: dict[str, tuple[list[Doc], list[str]]] = {}
    for f in original_findings():
        if f["severity"] == "info":
            continue
        for fix in f["fixes"]:
            out.setdefault(fix["label"], (fix["edits"], []))[1].append(f["code"])
    return out


# --- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "GET"])
def test_an_unknown_job_is_404(http, method):
    body = problem(http.request(method, f"/v1/experiments/{'0' * 32}/remedies"), 404)
    assert body["type"].endswith("not-found") and "0" * 32 in body["detail"]


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_job_not_final_is_409(http, server, status):
    job_id = stage(http, server, status)
    body = problem(http.post(f"/v1/experiments/{job_id}/remedies"), 409)
    assert status in body["detail"]


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_job_that_did_not_succeed_is_422(http, server, result_doc, status):
    job_id = stage(http, server, status, result(result_doc, findings=original_findings()))
    body = problem(http.post(f"/v1/experiments/{job_id}/remedies"), 422)
    assert f"ended {status}" in body["detail"]
    assert [(e["field"], e["in"]) for e in body["errors"]] == [("job_id", "path")]


@pytest.mark.parametrize("findings", [[], [finding("interpolation_barrier", "info", [
    {"label": "wider", "edits": [{"path": "model.width", "value": 16}]}])],
    [finding("gradient_misaligned_with_solution", "warning", [])]],
    ids=["no-findings", "only-info", "warning-without-fix"])
def test_a_job_without_a_fix_to_try_is_422(http, server, result_doc, findings):
    job_id = stage(http, server, "succeeded", result(result_doc, findings=findings))
    body = problem(http.post(f"/v1/experiments/{job_id}/remedies"), 422)
    assert "no warning or critical finding with a fix" in body["detail"]
    assert server.app.state.sweeps.list_sweeps().items == []


def test_another_keys_job_is_404_and_no_remedies_yet_is_404(http, server, result_doc):
    job_id = stage(http, server, "succeeded", result(result_doc, findings=original_findings()))
    for method in ("POST", "GET"):
        body = problem(http.request(method, f"/v1/experiments/{job_id}/remedies",
                                    headers=as_(BOB)), 404)
        assert body["type"].endswith(":not-found")
    body = problem(http.get(f"/v1/experiments/{job_id}/remedies"), 404)
    assert body["type"].endswith("remedies-not-found") and "POST" in body["detail"]
    assert http.post(f"/v1/experiments/{job_id}/remedies").status_code == 202
    assert http.get(f"/v1/experiments/{job_id}/remedies", headers=as_(BOB)).status_code == 404


# --- the launch ----------------------------------------------------------------------------

def test_the_twins_are_a_sweep_of_the_jobs_spec_with_exactly_each_fixs_edits(
    http, server, result_doc
):
    job_id = stage(http, server, "succeeded", result(result_doc, findings=original_findings()))
    response = http.post(f"/v1/experiments/{job_id}/remedies")
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/experiments/{job_id}/remedies"
    outcome = response.json()
    expected = expected_fixes()
    assert len(expected) == 4  # relu + He, residual, batch norm (shared), lr x10
    assert {f["label"]: (f["edits"], f["targets"]) for f in outcome["fixes"]} == expected
    relu = next(label for label in expected if "relu" in label)
    assert expected[relu][1] == [VANISHING, SATURATED]  # one twin for both findings

    sweep = http.get(f"/v1/sweeps/{outcome['sweep_id']}").json()
    assert sweep["variants"] == {label: {e["path"]: e["value"] for e in edits}
                                 for label, (edits, _) in expected.items()}
    assert sweep["progress"]["by_status"]["queued"] == 4
    original = http.get(f"/v1/experiments/{job_id}").json()["spec"]
    for fix in outcome["fixes"]:
        twin = http.get(f"/v1/experiments/{fix['job_id']}").json()
        assert (twin["status"], twin["sweep_id"]) == ("queued", outcome["sweep_id"])
        want = apply_edits(original, fix["edits"])
        assert {**twin["spec"], "name": None} == {**want, "name": None}, fix["label"]
        assert twin["spec"] != original
        assert fix["label"] in twin["spec"]["name"]
        assert http.get(f"/v1/experiments/{fix['job_id']}", headers=as_(BOB)).status_code == 404
    assert outcome["status"] == "running" and outcome["progress"]["total"] == 4
    assert outcome["before"] == {"final_val_loss": 0.70, "baseline_val_loss": 0.69,
                                 "loss_share": pytest.approx(0.70 / 0.69),
                                 "grad_ratio_init": 1e-6,
                                 "findings": [VANISHING, SATURATED, FROZEN]}


def test_a_second_post_returns_the_same_twins_and_rerun_launches_new_ones(
    http, server, redis_server, result_doc
):
    job_id = stage(http, server, "succeeded", result(result_doc, findings=original_findings()))
    first = http.post(f"/v1/experiments/{job_id}/remedies").json()
    queued = redis_server.client(DB).llen("cpu")
    again = http.post(f"/v1/experiments/{job_id}/remedies")
    assert again.status_code == 200
    assert again.json()["sweep_id"] == first["sweep_id"]
    assert redis_server.client(DB).llen("cpu") == queued  # nothing launched again
    rerun = http.post(f"/v1/experiments/{job_id}/remedies", params={"rerun": "true"})
    assert rerun.status_code == 202 and rerun.json()["sweep_id"] != first["sweep_id"]
    assert redis_server.client(DB).llen("cpu") == queued + 4
    assert http.get(f"/v1/experiments/{job_id}/remedies").json()["sweep_id"] == \
        rerun.json()["sweep_id"]


def test_concurrent_posts_launch_the_twins_once(http, server, result_doc):
    job_id = stage(http, server, "succeeded", result(result_doc, findings=original_findings()))

    def post(_: int) -> tuple[int, str]:
        with server.client() as client:
            response = client.post(f"/v1/experiments/{job_id}/remedies", headers=as_(ALICE))
            return response.status_code, response.json()["sweep_id"]

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))
    assert sorted(code for code, _ in answers) == [200] * 5 + [202]
    assert len({sweep for _, sweep in answers}) == 1
    assert len(server.app.state.sweeps.list_sweeps().items) == 1


# --- the outcome ---------------------------------------------------------------------------

def test_the_outcome_says_what_each_fix_changed_and_ranks_them(http, server, result_doc):
    job_id = stage(http, server, "succeeded", result(result_doc, findings=original_findings()))
    fixes = http.post(f"/v1/experiments/{job_id}/remedies").json()["fixes"]
    by_label = {f["label"]: f for f in fixes}
    relu = next(f for label, f in by_label.items() if "relu" in label)
    residual, lr = by_label["residual connections"], by_label["learning rate x10"]
    # ReLU + He: both its findings gone. Residual: lower loss, but still vanishing.
    finish(server, relu["job_id"], result(result_doc, loss=0.30, ratio=0.9))
    finish(server, residual["job_id"], result(
        result_doc, loss=0.20, ratio=1e-4, findings=[finding(VANISHING, "critical")]))

    partial = http.get(f"/v1/experiments/{job_id}/remedies").json()
    assert partial["status"] == "running"
    assert partial["progress"]["by_status"]["succeeded"] == 2
    assert partial["progress"]["by_status"]["queued"] == 2
    ranked = {f["label"]: f for f in partial["fixes"]}
    assert [f["rank"] for f in partial["fixes"]] == [1, 2, 3, 4]
    assert partial["fixes"][0]["label"] == relu["label"]  # resolved all beats lower loss
    assert partial["fixes"][1]["label"] == "residual connections"
    got = ranked[relu["label"]]
    assert got["resolved"] == {VANISHING: True, SATURATED: True} and got["resolved_all"]
    assert got["findings_after"] == []
    assert got["final_val_loss"] == {"before": 0.70, "after": 0.30}
    assert got["loss_share"]["after"] == pytest.approx(0.30 / 0.69)
    assert got["grad_ratio_init"] == {"before": 1e-6, "after": 0.9}
    got = ranked["residual connections"]
    assert got["resolved"] == {VANISHING: False, SATURATED: True}
    assert got["resolved_all"] is False and got["findings_after"] == [VANISHING]
    pending = ranked["learning rate x10"]
    assert pending["status"] == "queued" and pending["resolved"] == {FROZEN: None}
    assert pending["resolved_all"] is None and pending["final_val_loss"]["after"] is None

    finish(server, lr["job_id"], result(result_doc, loss=0.10, ratio=1e-6,
                                        findings=[finding(VANISHING, "critical")]))
    batch = next(f for f in fixes if f["label"] == "batch normalization")
    finish(server, batch["job_id"], result(result_doc, loss=0.25, ratio=2.0))
    done = http.get(f"/v1/experiments/{job_id}/remedies").json()
    assert done["status"] == "done" and done["progress"]["done"]
    # lr x10 targets only frozen_layers: resolved (vanishing is not its to fix), lowest loss
    assert [f["label"] for f in done["fixes"]] == [
        "learning rate x10", "batch normalization", relu["label"], "residual connections"]
    assert done["fixes"][0]["findings_after"] == [VANISHING]


def test_a_fix_that_silences_its_findings_but_trains_worse_is_not_verified(http, server,
                                                                             result_doc):
    """Batch norm removes both findings and ends above the original's loss: resolved, not
    verified, ranked after a fix that lowers the loss without resolving everything."""
    job_id = stage(http, server, "succeeded", result(result_doc, findings=original_findings()))
    fixes = http.post(f"/v1/experiments/{job_id}/remedies").json()["fixes"]
    by_label = {f["label"]: f for f in fixes}
    relu = next(f for label, f in by_label.items() if "relu" in label)
    finish(server, relu["job_id"], result(result_doc, loss=0.30, ratio=0.9))
    finish(server, by_label["batch normalization"]["job_id"],
           result(result_doc, loss=0.75, ratio=24.0))
    finish(server, by_label["residual connections"]["job_id"], result(
        result_doc, loss=0.62, ratio=0.98, findings=[finding(VANISHING, "critical")]))
    finish(server, by_label["learning rate x10"]["job_id"],
           result(result_doc, loss=0.70, ratio=1e-6, findings=[finding(VANISHING, "critical")]))
    done = http.get(f"/v1/experiments/{job_id}/remedies").json()
    order = [(f["label"], f["resolved_all"], f["verified"]) for f in done["fixes"]]
    assert order == [
        (relu["label"], True, True),
        ("residual connections", False, False),
        ("learning rate x10", True, False),  # resolved frozen_layers, the loss did not go down
        ("batch normalization", True, False),
    ]
    page = http.get(f"/v1/experiments/{job_id}/report").text
    assert "yes, but the loss did not go down" in page


def test_the_report_shows_each_fix_before_and_after(http, server, result_doc):
    job_id = stage(http, server, "succeeded", result(result_doc, findings=original_findings()))
    assert "id=\"remedies\"" not in http.get(f"/v1/experiments/{job_id}/report").text
    fixes = http.post(f"/v1/experiments/{job_id}/remedies").json()["fixes"]
    relu = next(f for f in fixes if "relu" in f["label"])
    finish(server, relu["job_id"], result(result_doc, loss=0.3125, ratio=0.875))
    page = http.get(f"/v1/experiments/{job_id}/report").text
    section = page.split("id=\"remedies\"", 1)[1].split("<h2>", 1)[0]
    row = next(r for r in section.split("<tr>") if relu["label"] in r)
    cells = [c.split(">", 1)[1] for c in row.split("</td>")[:-1]]
    assert cells[:9] == ["1", relu["label"], "yes", "0.7", "0.3125", f"{0.70 / 0.69:.4g}",
                         f"{0.3125 / 0.69:.4g}", "1.00e-06", "0.875"]
    assert "twins still running" in section
    assert relu["job_id"][:8] in row


def test_verified_needs_every_finding_gone_and_a_lower_loss():
    """A diverged original (no loss) counts as infinitely high; a twin without a finite loss
    is never verified; an equal loss is not lower."""
    from service.usecases.remedies import _verified

    gone, kept = {VANISHING: True}, {VANISHING: True, SATURATED: False}
    assert _verified(gone, 0.7, 0.3) and not _verified(kept, 0.7, 0.3)
    assert not _verified(gone, 0.7, 0.7) and not _verified(gone, 0.7, 0.8)
    assert _verified(gone, None, 0.3) and _verified(gone, math.inf, 0.3)
    assert not _verified(gone, 0.7, None) and not _verified(gone, None, math.nan)
