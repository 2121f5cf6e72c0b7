"""The rules of the automatic insights (analytics.services.insights keeps their Insight rows): each
reads the rollups only (Rollup, StepRollup, Tally: never another app's tables), over windows rounded out
to whole buckets as the selectors round ranges, and returns Findings. docs/analytics.md ("Insights")
states each rule and its thresholds."""

import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from analytics.histograms import merged, percentile
from analytics.models import NO_WORKFLOW, Insight, Rollup, StepRollup, Tally
from analytics.services.recording import bucket_start

Granularity = Rollup.Granularity
Kind, Severity = Insight.Kind, Insight.Severity


# failure_spike. Three standard deviations: an ordinary hour gets there about once in a thousand.
FAILURE_SPIKE_Z = 3.0
FAILURE_SPIKE_HIGH_Z = 5.0
FAILURE_SPIKE_HIGH_RATE = 0.5
# A few failures in a quiet hour are noise, whatever their z-score.
FAILURE_SPIKE_MIN_FAILURES = 5
# A workflow that has (almost) never failed has a deviation of zero and any failure would be infinitely
# many of them away: the deviation counts as at least 5 points of rate.
FAILURE_RATE_MIN_STDDEV = 0.05
# A baseline needs a few hours with runs to say what is usual for the workflow.
FAILURE_BASELINE_MIN_HOURS = 3
# latency_regression: half as slow again, over enough runs (or steps) that a p95 means something.
LATENCY_RATIO = 1.5
LATENCY_HIGH_RATIO = 3.0
LATENCY_MIN_RUNS = 20
# flaky_node: one retry in ten steps is more than a passing glitch; ten steps make a rate.
FLAKY_RETRY_RATE = 0.10
FLAKY_MIN_STEPS = 10
# A node whose steps mostly fail in the end is failing, not flaky (failure_spike's concern).
FLAKY_MAX_FAILURE_RATE = 0.5
# cost_growth: half as much again, and at least this much more (in the providers' currency, as `cost`
# is kept): cents doubling are not worth a person's attention.
COST_GROWTH_RATIO = 1.5
COST_GROWTH_HIGH_RATIO = 3.0
COST_GROWTH_MIN_INCREASE = 1.0
# top_spender: one workflow with half of a workspace's spending, of a sum worth looking at.
TOP_SPENDER_SHARE = 0.5
TOP_SPENDER_MIN_COST = 1.0
# retries_hide_dependency: ten retries of calls to one host in a day is a dependency failing quietly.
HOST_RETRIES_MIN = 10
HOST_RETRIES_HIGH = 100
# unused_workflow: no run for this many days of the year looked back on.
UNUSED_DAYS = 30
UNUSED_LOOKBACK_DAYS = 365

WORKSPACE_SUBJECT = "workspace"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def numbers(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass
class Finding:
    workspace_id: str
    kind: str
    subject: str
    severity: str
    title: str
    numbers: dict
    period: Window
    workflow_id: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.workspace_id, self.kind, self.subject)


def findings_at(now: datetime) -> list[Finding]:
    """What every rule finds as of `now`, for all workspaces."""
    return [
        *_failure_spikes(now),
        *_latency_regressions(now),
        *_slowest_nodes(now),
        *_flaky_nodes(now),
        *_cost_findings(now),
        *_host_retries(now),
        *_missed_schedules(now),
        *_unused_workflows(now),
    ]


def _hours_until(now: datetime, length: timedelta) -> Window:
    """The last `length` as whole hours, the current hour included."""
    end = bucket_start(now, Granularity.HOUR) + timedelta(hours=1)
    return Window(end - length, end)


def _before(window: Window) -> Window:
    return Window(window.start - (window.end - window.start), window.start)


def _rows(model, granularity: str, window: Window, *fields: str):
    return model.objects.filter(granularity=granularity, bucket__gte=window.start, bucket__lt=window.end).values_list(
        *fields
    )


def _short(workflow_id) -> str:
    return str(workflow_id)[:8]


def _percent(rate: float) -> str:
    return f"{rate * 100:.0f} %"


def _ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def _failure_spikes(now: datetime) -> Iterator[Finding]:
    """A workflow's failure rate over the last hour (minute rollups) against its hourly rates of the 7
    days before (hour rollups): a z-score."""
    minute_end = bucket_start(now, Granularity.MINUTE) + timedelta(minutes=1)
    current = Window(minute_end - timedelta(hours=1), minute_end)
    baseline_end = bucket_start(current.start, Granularity.HOUR)
    baseline = Window(baseline_end - timedelta(days=7), baseline_end)
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    fields = ("workspace_id", "workflow_id", "succeeded", "failed")
    for workspace, workflow, succeeded, failed in _rows(Rollup, Granularity.MINUTE, current, *fields):
        counts[(str(workspace), str(workflow))][0] += failed
        counts[(str(workspace), str(workflow))][1] += succeeded + failed
    hourly: dict[tuple, list[float]] = defaultdict(list)
    for workspace, workflow, succeeded, failed in _rows(Rollup, Granularity.HOUR, baseline, *fields):
        if succeeded + failed:
            hourly[(str(workspace), str(workflow))].append(failed / (succeeded + failed))
    for (workspace, workflow), (failed, finished) in counts.items():
        rates = hourly.get((workspace, workflow), [])
        if failed < FAILURE_SPIKE_MIN_FAILURES or len(rates) < FAILURE_BASELINE_MIN_HOURS:
            continue
        rate, mean, stddev = failed / finished, statistics.fmean(rates), statistics.pstdev(rates)
        z = (rate - mean) / max(stddev, FAILURE_RATE_MIN_STDDEV)
        if z < FAILURE_SPIKE_Z:
            continue
        high = z >= FAILURE_SPIKE_HIGH_Z or rate >= FAILURE_SPIKE_HIGH_RATE
        yield Finding(
            workspace_id=workspace,
            workflow_id=workflow,
            kind=Kind.FAILURE_SPIKE,
            subject=workflow,
            severity=Severity.HIGH if high else Severity.WARNING,
            title=(
                f"Workflow {_short(workflow)} failed {failed} of {finished} runs ({_percent(rate)}) in the last "
                f"hour, against {_percent(mean)} ± {_percent(stddev)} an hour over the previous 7 days "
                f"(z = {z:.1f})."
            ),
            numbers={
                "failed": failed,
                "runs": finished,
                "failure_rate": round(rate, 4),
                "baseline_rate": round(mean, 4),
                "baseline_stddev": round(stddev, 4),
                "baseline_hours": len(rates),
                "z": round(z, 2),
                "period": current.numbers(),
                "baseline": baseline.numbers(),
            },
            period=current,
        )


def _latency_regressions(now: datetime) -> Iterator[Finding]:
    """The p95 duration of a workflow's runs, and of each node's steps, over the last 24 hours against
    the 24 hours before."""
    current = _hours_until(now, timedelta(days=1))
    previous = _before(current)
    for model, extra in ((Rollup, ()), (StepRollup, ("node_key",))):
        histograms: dict[tuple, list[list[dict]]] = defaultdict(lambda: [[], []])
        fields = ("workspace_id", "workflow_id", *extra, "duration_histogram")
        for index, window in enumerate((previous, current)):
            for *key, histogram in _rows(model, Granularity.HOUR, window, *fields):
                histograms[tuple(str(part) for part in key)][index].append(histogram)
        for key, (before, after) in histograms.items():
            before, after = merged(*before), merged(*after)
            runs_before, runs_after = sum(before.values()), sum(after.values())
            if min(runs_before, runs_after) < LATENCY_MIN_RUNS:
                continue
            p95_before, p95_after = percentile(before, 95), percentile(after, 95)
            if not p95_before or p95_after / p95_before < LATENCY_RATIO:
                continue
            ratio = p95_after / p95_before
            workspace, workflow, *node = key
            what = f"Node {node[0]} of workflow {_short(workflow)}" if node else f"Workflow {_short(workflow)}"
            counted = "steps" if node else "runs"
            yield Finding(
                workspace_id=workspace,
                workflow_id=workflow,
                kind=Kind.LATENCY_REGRESSION,
                subject=f"{workflow}/{node[0]}" if node else workflow,
                severity=Severity.HIGH if ratio >= LATENCY_HIGH_RATIO else Severity.WARNING,
                title=(
                    f"{what} got slower: p95 {_ms(p95_after)} over the last 24 hours ({runs_after} {counted}), "
                    f"{ratio:.1f} times the {_ms(p95_before)} of the 24 hours before ({runs_before} {counted})."
                ),
                numbers={
                    "node_key": node[0] if node else None,
                    "p95_ms": round(p95_after, 1),
                    "previous_p95_ms": round(p95_before, 1),
                    "ratio": round(ratio, 2),
                    counted: runs_after,
                    f"previous_{counted}": runs_before,
                    "period": current.numbers(),
                    "previous_period": previous.numbers(),
                },
                period=current,
            )


def _node_histograms(window: Window) -> dict[tuple[str, str], dict[str, list]]:
    """(workspace, workflow) → node key → its rows' (succeeded, failed, retries, histogram) over the window."""
    nodes: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    fields = ("workspace_id", "workflow_id", "node_key", "succeeded", "failed", "retries", "duration_histogram")
    for workspace, workflow, node_key, *figures in _rows(StepRollup, Granularity.HOUR, window, *fields):
        nodes[(str(workspace), str(workflow))][node_key].append(figures)
    return nodes


def _slowest_nodes(now: datetime) -> Iterator[Finding]:
    """The node of highest p95 over 7 days, of each workflow with two nodes or more."""
    week = _hours_until(now, timedelta(days=7))
    for (workspace, workflow), nodes in _node_histograms(week).items():
        if len(nodes) < 2:
            continue
        p95s = {
            key: (percentile(merged(*(row[3] for row in rows)), 95) or 0, sum(row[0] + row[1] for row in rows))
            for key, rows in nodes.items()
        }
        ranked = sorted(p95s, key=lambda key: (-p95s[key][0], key))
        slowest, runner_up = ranked[0], ranked[1]
        yield Finding(
            workspace_id=workspace,
            workflow_id=workflow,
            kind=Kind.SLOWEST_NODE,
            subject=workflow,
            severity=Severity.INFO,
            title=(
                f"The slowest node of workflow {_short(workflow)} is {slowest}: p95 {_ms(p95s[slowest][0])} over "
                f"7 days, against {_ms(p95s[runner_up][0])} for the next, {runner_up}."
            ),
            numbers={
                "node_key": slowest,
                "p95_ms": round(p95s[slowest][0], 1),
                "steps": p95s[slowest][1],
                "next_node_key": runner_up,
                "next_p95_ms": round(p95s[runner_up][0], 1),
                "nodes": len(nodes),
                "period": week.numbers(),
            },
            period=week,
        )


def _flaky_nodes(now: datetime) -> Iterator[Finding]:
    """Nodes whose steps needed retries and mostly succeeded in the end, over 24 hours. The rollups count
    a node's retries, not which steps they were of: "in the end" is the node's steps mostly succeeding."""
    day = _hours_until(now, timedelta(days=1))
    for (workspace, workflow), nodes in _node_histograms(day).items():
        for node_key, rows in nodes.items():
            succeeded, failed, retries = (sum(row[index] for row in rows) for index in range(3))
            steps = succeeded + failed
            if steps < FLAKY_MIN_STEPS or failed / steps > FLAKY_MAX_FAILURE_RATE:
                continue
            if retries / steps < FLAKY_RETRY_RATE:
                continue
            yield Finding(
                workspace_id=workspace,
                workflow_id=workflow,
                kind=Kind.FLAKY_NODE,
                subject=f"{workflow}/{node_key}",
                severity=Severity.WARNING,
                title=(
                    f"Node {node_key} of workflow {_short(workflow)} is flaky: {retries} retries for {steps} steps "
                    f"({_percent(retries / steps)}) in the last 24 hours, {succeeded} of them succeeded."
                ),
                numbers={
                    "node_key": node_key,
                    "steps": steps,
                    "succeeded": succeeded,
                    "failed": failed,
                    "retries": retries,
                    "retry_rate": round(retries / steps, 4),
                    "period": day.numbers(),
                },
                period=day,
            )


def _cost_findings(now: datetime) -> Iterator[Finding]:
    """Cost growth of a workspace or a workflow (7 days against the 7 before) and the top spender of a
    workspace (7 days)."""
    current = _hours_until(now, timedelta(days=7))
    previous = _before(current)
    costs: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for index, window in enumerate((previous, current)):
        for workspace, workflow, cost in _rows(Rollup, Granularity.HOUR, window, "workspace_id", "workflow_id", "cost"):
            costs[str(workspace)][str(workflow)][index] += cost
            costs[str(workspace)][WORKSPACE_SUBJECT][index] += cost
    periods = {"period": current.numbers(), "previous_period": previous.numbers()}
    for workspace, by_subject in costs.items():
        for subject, (before, after) in by_subject.items():
            if before <= 0 or after / before < COST_GROWTH_RATIO or after - before < COST_GROWTH_MIN_INCREASE:
                continue
            ratio = after / before
            what = "The workspace's" if subject == WORKSPACE_SUBJECT else f"Workflow {_short(subject)}'s"
            yield Finding(
                workspace_id=workspace,
                workflow_id=None if subject == WORKSPACE_SUBJECT else subject,
                kind=Kind.COST_GROWTH,
                subject=subject,
                severity=Severity.HIGH if ratio >= COST_GROWTH_HIGH_RATIO else Severity.WARNING,
                title=(
                    f"{what} cost grew {ratio:.1f} times: {after:.2f} over the last 7 days against {before:.2f} over "
                    "the 7 days before."
                ),
                numbers={
                    "cost": round(after, 6),
                    "previous_cost": round(before, 6),
                    "ratio": round(ratio, 2),
                    **periods,
                },
                period=current,
            )
        total = by_subject[WORKSPACE_SUBJECT][1]
        spenders = {
            subject: pair[1] for subject, pair in by_subject.items() if subject != WORKSPACE_SUBJECT and pair[1] > 0
        }
        if total < TOP_SPENDER_MIN_COST or len(spenders) < 2:
            continue
        top = max(sorted(spenders), key=lambda subject: spenders[subject])
        share = spenders[top] / total
        if share < TOP_SPENDER_SHARE:
            continue
        yield Finding(
            workspace_id=workspace,
            workflow_id=top,
            kind=Kind.TOP_SPENDER,
            subject=top,
            severity=Severity.INFO,
            title=(
                f"Workflow {_short(top)} spent {spenders[top]:.2f} of the workspace's {total:.2f} "
                f"({_percent(share)}) over the last 7 days."
            ),
            numbers={
                "cost": round(spenders[top], 6),
                "workspace_cost": round(total, 6),
                "share": round(share, 4),
                "workflows": len(spenders),
                "period": current.numbers(),
            },
            period=current,
        )


def _host_retries(now: datetime) -> Iterator[Finding]:
    """One host behind many retries of HTTP steps over 24 hours (tally `retries.host`), in any workflow."""
    day = _hours_until(now, timedelta(days=1))
    retries: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    fields = ("workspace_id", "workflow_id", "label", "count")
    for workspace, workflow, host, count in _rows(Tally, Granularity.HOUR, day, *fields).filter(kind="retries.host"):
        retries[(str(workspace), host)][str(workflow)] += count
    for (workspace, host), by_workflow in retries.items():
        total = sum(by_workflow.values())
        if total < HOST_RETRIES_MIN:
            continue
        workflows = sorted(by_workflow, key=lambda workflow: (-by_workflow[workflow], workflow))
        yield Finding(
            workspace_id=workspace,
            workflow_id=workflows[0] if len(workflows) == 1 else None,
            kind=Kind.RETRIES_HIDE_DEPENDENCY,
            subject=host,
            severity=Severity.HIGH if total >= HOST_RETRIES_HIGH else Severity.WARNING,
            title=(
                f"Calls to {host} needed {total} retries in the last 24 hours, in {len(workflows)} "
                f"workflow{'s' if len(workflows) > 1 else ''}: the host may be unhealthy."
            ),
            numbers={"host": host, "retries": total, "by_workflow": dict(by_workflow), "period": day.numbers()},
            period=day,
        )


def _missed_schedules(now: datetime) -> Iterator[Finding]:
    """Schedule slots a workflow missed in the last 24 hours (tally `schedule.missed`)."""
    day = _hours_until(now, timedelta(days=1))
    missed: dict[tuple[str, str], int] = defaultdict(int)
    fields = ("workspace_id", "workflow_id", "count")
    for workspace, workflow, count in _rows(Tally, Granularity.HOUR, day, *fields).filter(kind="schedule.missed"):
        if workflow != NO_WORKFLOW:
            missed[(str(workspace), str(workflow))] += count
    for (workspace, workflow), slots in missed.items():
        yield Finding(
            workspace_id=workspace,
            workflow_id=workflow,
            kind=Kind.SCHEDULE_MISSING,
            subject=workflow,
            severity=Severity.WARNING,
            title=(
                f"Workflow {_short(workflow)} missed {slots} scheduled run{'s' if slots > 1 else ''} in the last "
                "24 hours."
            ),
            numbers={"missed_slots": slots, "period": day.numbers()},
            period=day,
        )


def _unused_workflows(now: datetime) -> Iterator[Finding]:
    """Workflows with runs in the last year (day rollups) but none in the last 30 days. Analytics know
    only workflows that ran: one never run is not among them."""
    end = bucket_start(now, Granularity.DAY) + timedelta(days=1)
    year, recent = (
        Window(end - timedelta(days=UNUSED_LOOKBACK_DAYS), end),
        Window(end - timedelta(days=UNUSED_DAYS), end),
    )
    last_day: dict[tuple[str, str], datetime] = {}
    for workspace, workflow, day in _rows(Rollup, Granularity.DAY, year, "workspace_id", "workflow_id", "bucket"):
        key = (str(workspace), str(workflow))
        last_day[key] = max(last_day.get(key, day), day)
    for (workspace, workflow), day in last_day.items():
        if day >= recent.start:
            continue
        idle = Window(day + timedelta(days=1), now)
        yield Finding(
            workspace_id=workspace,
            workflow_id=workflow,
            kind=Kind.UNUSED_WORKFLOW,
            subject=workflow,
            severity=Severity.INFO,
            title=(
                f"Workflow {_short(workflow)} has not run for {(idle.end - idle.start).days} days: its last run "
                f"finished on {day.astimezone(UTC):%Y-%m-%d}."
            ),
            numbers={
                "last_run_day": day.date().isoformat(),
                "idle_days": (idle.end - idle.start).days,
                "period": idle.numbers(),
            },
            period=idle,
        )
