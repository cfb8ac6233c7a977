"""The scheduler's decisions on PostgreSQL and SQLite: order (priority, weighted fair share,
age), quotas (also under concurrent claimers and submits), preemption with its thrash
guard, and the reasons a queued job gives for waiting."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from service.store.db import session_scope
from service.store.fleet import FleetStore
from service.store.jobs import JobStore
from service.store.projects import ProjectStore
from service.store.scheduler import Scheduler
from service.store.tables import Attempt, Job, utcnow

LEASE = 600
PREEMPT = {"min_seconds": 0, "cooldown_seconds": 60, "stale_after": 30}


def submit(jobs: JobStore, project: str, priority: int = 0, queue: str = "default") -> str:
    spec = {"name": f"{project}-p{priority}", "queue": queue, "priority": priority}
    return jobs.create(spec, epochs=1, summary=None, max_attempts=3, project=project)["id"]


def report(url: str, name: str, state: str = "busy", queues=("default",), gpus: int = 0):
    FleetStore(url).report(
        name, hostname="h", pid=1, queues=list(queues), state=state, job_id=None, gpus=gpus
    )


def running(url: str) -> dict[str, int]:
    with session_scope(url) as s:
        rows = s.execute(select(Job.project).where(Job.state == "running")).scalars().all()
    out: dict[str, int] = {}
    for p in rows:
        out[p] = out.get(p, 0) + 1
    return out


def test_priority_first_then_weighted_share_then_age(db_url):
    jobs, sched = JobStore(db_url), Scheduler(db_url)
    ProjectStore(db_url).set("vision", weight=3)
    nlp = [submit(jobs, "nlp") for _ in range(4)]
    vision = [submit(jobs, "vision") for _ in range(4)]
    urgent = submit(jobs, "nlp", priority=5)
    taken = [sched.claim_next("default", f"w{i}", LEASE).job_id for i in range(4)]
    # the urgent job first; then nlp's oldest (both at 0 running), then vision, which
    # stays below its share of 3/4 until it holds three of the four workers
    assert taken[0] == urgent
    assert running(db_url) == {"nlp": 1, "vision": 3}
    assert taken[1:] == vision[:3]
    assert nlp[0] not in taken  # the urgent job used nlp's slot of the four
    claim = jobs.claim(taken[1], "x", LEASE)  # a job named directly is still claimable
    assert claim is None  # ... but not twice


def test_a_project_at_a_quota_waits_and_others_go_first(db_url):
    jobs, sched, projects = JobStore(db_url), Scheduler(db_url), ProjectStore(db_url)
    projects.set("vision", max_running=1)
    projects.set("audio", max_gpus=2)
    v = [submit(jobs, "vision") for _ in range(2)]
    a = [submit(jobs, "audio") for _ in range(2)]
    first = sched.claim_next("default", "w1", LEASE, gpus=2)
    assert first.job_id == v[0]
    second = sched.claim_next("default", "w2", LEASE, gpus=2)
    assert second.job_id == a[0]  # vision is at its quota; audio's first job fits 2 GPUs
    assert sched.claim_next("default", "w3", LEASE, gpus=2) is None  # both at a quota
    report(db_url, "w3", state="idle")
    reasons = sched.wait_reasons([v[1], a[1]], stale_after=30)
    assert reasons[v[1]] == "project vision is at its quota of 1 running job"
    assert reasons[a[1]] == "project audio is at its quota of 2 GPUs (2 in use)"
    projects.set("vision", max_running=None)  # raised: the job can start
    assert sched.claim_next("default", "w3", LEASE, gpus=2).job_id == v[1]


def test_wait_reasons_in_words(db_url):
    jobs, sched = JobStore(db_url), Scheduler(db_url)
    orphan = submit(jobs, "vision", queue="gpu-a100")
    low = submit(jobs, "vision")
    assert sched.wait_reasons([orphan], 30)[orphan] == "no worker serves queue gpu-a100"
    report(db_url, "w1", state="busy")
    assert sched.wait_reasons([low], 30)[low] == "the one worker of queue default is busy"
    high = [submit(jobs, "nlp", priority=3) for _ in range(3)]
    assert sched.wait_reasons([low], 30)[low] == "3 jobs of higher priority are ahead"
    report(db_url, "w2", state="busy")
    got = sched.wait_reasons([high[2]], 30)[high[2]]
    assert got == (
        "all 2 workers of queue default are busy; 2 older jobs of equal priority are ahead "
        "(fair share, then age)"
    )
    answer = jobs.get(orphan)  # the job's answer carries it
    assert answer["waiting"] == "no worker serves queue gpu-a100"
    assert answer["preemptions"] == 0 and answer["preempt_requested"] is False


def test_a_redelivered_message_takes_over_an_expired_lease(db_url):
    jobs, sched = JobStore(db_url), Scheduler(db_url)
    job_id = submit(jobs, "vision")
    first = sched.claim_next("default", "dead", 0.01)
    time.sleep(0.05)
    again = sched.claim_next("default", "alive", LEASE)
    assert again.job_id == job_id and again.attempt_id != first.attempt_id
    assert [a["state"] for a in jobs.attempts(job_id)] == ["lost", "running"]


# -- quotas under concurrency ---------------------------------------------------------


def _claimer(url: str, name: str, ready, go, seconds: float) -> None:
    """A scheduler process: claims, holds a moment, finishes, for ``seconds`` after ``go``."""
    from service.store.jobs import JobStore
    from service.store.scheduler import Scheduler

    sched, jobs = Scheduler(url), JobStore(url)
    sched.next_claimable("default")  # connected before the start
    ready.release()
    go.wait(120)
    until = time.time() + seconds
    held = []
    while time.time() < until:
        claim = sched.claim_next("default", name, LEASE, gpus=1)
        if claim is not None:
            held.append(claim)
        if held and (claim is None or len(held) > 1):
            done = held.pop(0)
            jobs.finish(done.job_id, done.attempt_id, "succeeded")
        time.sleep(0.002)
    for done in held:
        jobs.finish(done.job_id, done.attempt_id, "succeeded")


def max_overlap(url: str) -> dict[str, int]:
    """Per project, the most attempts that ever ran at once (from the attempts table)."""
    with session_scope(url) as s:
        rows = s.execute(
            select(Job.project, Attempt.started_at, Attempt.ended_at).join(
                Job, Job.id == Attempt.job_id
            )
        ).all()
    events: dict[str, list] = {}
    for project, start, end in rows:
        events.setdefault(project, []).extend([(start, 1), (end or utcnow(), -1)])
    out = {}
    for project, ev in events.items():
        n = best = 0
        for _, d in sorted(ev, key=lambda e: (e[0], e[1])):  # an end before a start at a tie
            n += d
            best = max(best, n)
        out[project] = best
    return out


def test_quotas_hold_with_concurrent_schedulers_and_submits(db_url):
    jobs, projects = JobStore(db_url), ProjectStore(db_url)
    projects.set("vision", max_running=2)
    projects.set("audio", max_running=5, max_gpus=3)
    for _ in range(20):
        submit(jobs, "vision")
        submit(jobs, "audio")
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Semaphore(0), ctx.Event()
    procs = [
        ctx.Process(target=_claimer, args=(db_url, f"sched{i}", ready, go, 4)) for i in range(4)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert ready.acquire(timeout=120)
    go.set()
    until = time.time() + 3

    def submitter():
        while time.time() < until:
            submit(jobs, "vision")
            submit(jobs, "audio")
            time.sleep(0.01)

    threads = [threading.Thread(target=submitter) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    overlap = max_overlap(db_url)
    assert overlap["vision"] <= 2, overlap
    assert overlap["audio"] <= 3, overlap  # 1 GPU per claimer: the GPU quota binds first
    with session_scope(db_url) as s:
        attempts = s.scalars(select(Attempt.job_id)).all()
    assert len(attempts) == len(set(attempts)) > 10  # no job started twice


# -- preemption -----------------------------------------------------------------------


def _fleet_of_low_jobs(url: str, n: int) -> list[str]:
    jobs, sched = JobStore(url), Scheduler(url)
    ids = []
    for i in range(n):
        submit(jobs, "batch", priority=1)
        report(url, f"w{i}", state="busy")
        ids.append(sched.claim_next("default", f"w{i}", LEASE).job_id)
    return ids


def _age_attempts(url: str, seconds: float) -> None:
    with session_scope(url) as s:
        s.execute(update(Attempt).values(started_at=utcnow() - timedelta(seconds=seconds)))


def test_a_higher_priority_job_preempts_the_lowest_priority_running_job(db_url):
    jobs, sched = JobStore(db_url), Scheduler(db_url)
    low = _fleet_of_low_jobs(db_url, 2)
    with session_scope(db_url) as s:  # one of them is of priority 0: it is the victim
        s.execute(update(Job).where(Job.id == low[0]).values(priority=0))
    urgent = submit(jobs, "vision", priority=7)
    assert sched.preempt(**{**PREEMPT, "min_seconds": 30}) == []  # none ran 30 s yet
    _age_attempts(db_url, 60)
    asked = sched.preempt(**PREEMPT)
    assert [a["id"] for a in asked] == [low[0]] and asked[0]["for"] == urgent
    assert sched.preempt(**PREEMPT) == []  # the slot being freed is the urgent job's
    view = jobs.get(urgent)
    assert "checkpointing to give way" in view["waiting"]
    victim = jobs.get(low[0])
    assert victim["preempt_requested"] is True
    attempt = jobs.get(low[0])["attempts"]
    renewal = jobs.renew_lease(low[0], _current(db_url, low[0]), LEASE)
    assert renewal.preempt and not renewal.cancel
    assert jobs.release(low[0], _current(db_url, low[0]), "a job of higher priority")
    after = jobs.get(low[0])
    assert after["state"] == "queued" and after["preemptions"] == 1
    assert not after["preempt_requested"] and after["attempts"] == attempt
    report(db_url, "w0", state="idle")
    assert sched.claim_next("default", "w0", LEASE).job_id == urgent


def _current(url: str, job_id: str) -> int:
    with session_scope(url) as s:
        return s.scalar(select(Job.current_attempt_id).where(Job.id == job_id))


def test_thrash_guard_no_job_is_preempted_twice_within_its_cooldown(db_url):
    jobs, sched = JobStore(db_url), Scheduler(db_url)
    (low,) = _fleet_of_low_jobs(db_url, 1)
    _age_attempts(db_url, 60)
    first = submit(jobs, "vision", priority=5)
    assert [a["id"] for a in sched.preempt(**PREEMPT)] == [low]
    jobs.release(low, _current(db_url, low), "a job of higher priority")
    claim = sched.claim_next("default", "w0", LEASE)
    assert claim.job_id == first
    jobs.finish(first, claim.attempt_id, "succeeded")  # the urgent job was short
    back = sched.claim_next("default", "w0", LEASE)
    assert back.job_id == low  # the victim resumes, its created_at keeping its place
    _age_attempts(db_url, 60)
    second = submit(jobs, "vision", priority=5)
    assert sched.preempt(**PREEMPT) == []  # within the cooldown: it keeps running
    assert "the one worker of queue default is busy" in jobs.get(second)["waiting"]
    assert [a["id"] for a in sched.preempt(**{**PREEMPT, "cooldown_seconds": 0})] == [low]


def test_fair_share_preemption_is_off_by_default_and_balances_when_on(db_url):
    jobs, sched = JobStore(db_url), Scheduler(db_url)
    ProjectStore(db_url).set("vision", weight=1)
    low = _fleet_of_low_jobs(db_url, 2)  # project batch holds both workers, priority 1
    _age_attempts(db_url, 60)
    with session_scope(db_url) as s:  # low[1] started last
        s.execute(
            update(Attempt)
            .where(Attempt.job_id == low[1])
            .values(started_at=utcnow() - timedelta(seconds=30))
        )
    submit(jobs, "vision", priority=1)
    assert sched.preempt(**PREEMPT) == []
    asked = sched.preempt(**PREEMPT, fair_share=True)
    assert [a["id"] for a in asked] == [low[1]]  # the most recently started
    jobs.release(low[1], _current(db_url, low[1]), "fair share")
    sched.claim_next("default", "w1", LEASE)
    _age_attempts(db_url, 3600)
    submit(jobs, "vision", priority=1)
    assert sched.preempt(**PREEMPT, fair_share=True) == []  # 1 and 1: balanced


@pytest.mark.parametrize("value", [0, -1, "3", True])
def test_project_settings_are_checked(sqlite_url, value):
    from service.core.errors import BadRequest

    with pytest.raises(BadRequest):
        ProjectStore(sqlite_url).set("vision", weight=value)
