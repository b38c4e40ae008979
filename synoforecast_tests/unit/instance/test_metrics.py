"""The Dagster instance's part of the metrics (synoforecast/instance/metrics.py) on a real SQLite
instance: runs by job and status, each job's latest finished run and its steps, each check's
outcome in its latest run, run-less evaluations, and the Metabase refresh's last outcome
(a failed step after a materialisation is "failed"; a later success clears it)."""

import dagster as dg

from synoforecast.instance.metrics import DagsterSource

REFRESH = dg.AssetKey(["activation", "metabase_refresh"])
SALES = dg.AssetKey(["raw", "sales"])


@dg.asset(key=SALES)
def sales(context: dg.AssetExecutionContext):
    if context.run.tags.get("sales") == "fail":
        raise dg.Failure(description="the sheet could not be read")
    return dg.MaterializeResult()


@dg.asset_check(asset=SALES, blocking=True)
def contract(context: dg.AssetCheckExecutionContext):
    return dg.AssetCheckResult(passed=context.run.tags.get("contract") != "broken")


@dg.asset_check(asset=SALES, blocking=False)
def row_delta(context: dg.AssetCheckExecutionContext):
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)


@dg.asset(key=REFRESH, deps=[SALES])
def metabase_refresh(context: dg.AssetExecutionContext):
    if context.run.tags.get("metabase") == "down":
        raise dg.Failure(description="Metabase refresh failed: 502")
    return dg.MaterializeResult(metadata={"status": "refreshed", "route": "metabase"})


ASSETS = [sales, contract, row_delta, metabase_refresh]


def run(instance, job, selection=None, **tags):
    return dg.materialize(
        ASSETS, instance=instance, tags={"job": job, **tags}, selection=selection, raise_on_error=False
    )


def test_runs_checks_steps_and_the_refresh_outcome(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        source = DagsterSource(instance, window_s=3600)
        assert source.facts().last_runs == ()
        assert source.facts().refreshes == ()  # never ran: no outcome, not a failure

        first = run(instance, "a", contract="broken")  # the blocking check fails: the refresh never runs
        assert not first.success
        facts = source.facts()
        outcome = {(c.check, c.severity): c for c in facts.checks}
        assert (outcome["contract", "ERROR"].passed, outcome["contract", "ERROR"].failed) == (0, 1)
        assert outcome["contract", "ERROR"].blocking is True
        assert (outcome["row_delta", "WARN"].failed, outcome["row_delta", "WARN"].blocking) == (1, False)
        assert facts.refreshes == ()  # skipped behind the failed check: not a refresh that failed

        ok = run(instance, "b")
        facts = source.facts()
        (job,) = {r.job for r in facts.last_runs}
        assert facts.recent == {(job, "FAILURE"): 1, (job, "SUCCESS"): 1}
        assert facts.in_progress == {}
        (last,) = facts.last_runs
        assert (last.status, last.run_id) == ("SUCCESS", ok.run_id) and last.duration > 0
        assert {s.step for s in facts.steps} == {
            "raw__sales",
            "raw__sales_contract",
            "raw__sales_row_delta",
            "activation__metabase_refresh",
        }
        outcome = {(c.check, c.severity): c for c in facts.checks}
        assert (outcome["contract", "ERROR"].passed, outcome["contract", "ERROR"].failed) == (1, 0)
        (refresh,) = facts.refreshes
        assert (refresh.asset, refresh.status, refresh.succeeded, refresh.run_id) == (
            "activation/metabase_refresh",
            "refreshed",
            True,
            ok.run_id,
        )

        down = run(instance, "c", metabase="down")
        (refresh,) = source.facts().refreshes
        assert (refresh.status, refresh.succeeded, refresh.run_id) == ("failed", False, down.run_id)

        # a run of the sales asset alone leaves the check's and the refresh's outcomes as they were
        only_sales = run(instance, "d", selection=[SALES], sales="fail")
        facts = source.facts()
        (refresh,) = facts.refreshes
        assert (refresh.status, refresh.run_id) == ("failed", down.run_id)
        assert {(c.check, c.passed) for c in facts.checks if c.severity == "ERROR"} == {("contract", 1)}
        assert facts.last_runs[0].run_id == only_sales.run_id
        assert {s.status for s in facts.steps} == {"FAILURE"}

        again = run(instance, "e")
        (refresh,) = source.facts().refreshes
        assert (refresh.status, refresh.succeeded, refresh.run_id) == ("refreshed", True, again.run_id)


def test_a_run_less_evaluation_newer_than_the_latest_run_wins(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run(instance, "a")
        key = dg.AssetCheckKey(SALES, "contract")
        source = DagsterSource(instance, runless_checks=[key])
        assert {(c.check, c.passed, c.failed) for c in source.facts().checks if c.check == "contract"} == {
            ("contract", 1, 0)
        }
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=SALES, check_name="contract", passed=False, severity=dg.AssetCheckSeverity.WARN
            )
        )
        (contract_now,) = [c for c in source.facts().checks if c.check == "contract"]
        assert (contract_now.passed, contract_now.failed, contract_now.severity) == (0, 1, "WARN")


def test_finished_runs_are_read_once(tmp_path, monkeypatch):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run(instance, "a")
        source = DagsterSource(instance)
        source.facts()
        calls = []
        original = instance.get_run_step_stats
        monkeypatch.setattr(instance, "get_run_step_stats", lambda *a, **k: calls.append(a) or original(*a, **k))
        source.facts()
        assert calls == []  # the finished run's steps came from the first scrape
