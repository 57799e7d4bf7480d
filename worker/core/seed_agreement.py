"""In how many initializations each finding fired (torch-free).

A finding judged on one initialization may be luck: ``training.seeds`` trains several and
``diagnostics.init_seeds`` probes several at step 0. These functions merge the findings of
each seed into one list, most severe first: every finding that fired on any seed appears once,
with ``seed_agreement = {fired, of, seeds, fired_on, basis}``. Its message and evidence are the
first seed's (the result's own sections) when it fired there, else those of the first seed it
fired on, whose number the evidence then names (``evidence.seed``).
"""

from __future__ import annotations

from typing import Any, Literal

from worker.core.findings.evaluate import SEVERITY_ORDER

Basis = Literal["training_seeds", "init_seeds"]
SeedFindings = tuple[int, list[dict[str, Any]]]  # a seed and the findings it fired


def merged_findings(per_seed: list[SeedFindings], basis: Basis) -> list[dict[str, Any]]:
    """The union of every seed's findings (the first seed's first), each with its agreement;
    severity first, then the share of seeds it fired on."""
    seeds = [seed for seed, _ in per_seed]
    first: dict[str, dict[str, Any]] = {}
    fired_on: dict[str, list[int]] = {}
    for index, (seed, found) in enumerate(per_seed):
        for finding in found:
            code = finding["code"]
            fired_on.setdefault(code, []).append(seed)
            if code not in first:
                first[code] = finding if index == 0 else _from_seed(finding, seed)
    out = [
        {**finding, "seed_agreement": agreement(fired_on[code], seeds, basis)}
        for code, finding in first.items()
    ]
    return sort_findings(out)


def with_init_agreement(
    found: list[dict[str, Any]], per_seed: list[SeedFindings]
) -> list[dict[str, Any]]:
    """``found`` with its init-time findings judged over ``per_seed`` (step-0 findings of each
    initialization, the run's own first); init-time findings that fired only on the fresh
    initializations are added. Findings judged after training keep what they had."""
    seeds = [seed for seed, _ in per_seed]
    fired_on: dict[str, list[int]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for seed, step0 in per_seed:
        for finding in step0:
            fired_on.setdefault(finding["code"], []).append(seed)
            extra.setdefault(finding["code"], _from_seed(finding, seed))
    out = []
    for finding in found:
        if finding.get("at_init"):
            seen = fired_on.get(finding["code"], [])
            finding = {**finding, "seed_agreement": agreement(seen, seeds, "init_seeds")}
        out.append(finding)
    listed = {f["code"] for f in found}
    out += [
        {**finding, "seed_agreement": agreement(fired_on[code], seeds, "init_seeds")}
        for code, finding in extra.items() if code not in listed
    ]
    return sort_findings(out)


def agreement(fired_on: list[int], seeds: list[int], basis: Basis) -> dict[str, Any]:
    on = [s for s in seeds if s in set(fired_on)]
    return {"fired": len(on), "of": len(seeds), "seeds": seeds, "fired_on": on, "basis": basis}


def sort_findings(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(finding: dict[str, Any]) -> tuple[int, float]:
        agree = finding.get("seed_agreement") or {"fired": 1, "of": 1}
        return SEVERITY_ORDER[finding["severity"]], -agree["fired"] / max(agree["of"], 1)

    return sorted(found, key=key)


def _from_seed(finding: dict[str, Any], seed: int) -> dict[str, Any]:
    return {**finding, "evidence": {**finding["evidence"], "seed": seed}}
