"""The one retry helper: budgets per kind of failure, a floor on the delay, stopping early."""

from __future__ import annotations

import threading

import pytest

from observer.retry import Backoff, Budget, RetriesExhausted, RetryCancelled, retry_call


class Flaky(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def test_each_kind_of_failure_spends_its_own_budget() -> None:
    answers = iter(["limit", "limit", "fail", "limit", "fail", "ok"])
    slept: list[float] = []

    def call() -> str:
        answer = next(answers)
        if answer != "ok":
            raise Flaky(answer)
        return answer

    budgets = {
        "fail": Budget(3, Backoff(schedule_s=[1.0, 2.0])),
        "limit": Budget(5, Backoff(schedule_s=[0.1])),
    }
    kind = lambda e: e.kind if isinstance(e, Flaky) else "fail"  # noqa: E731
    assert retry_call(call, retry_on=(Flaky,), kind_of=kind, budgets=budgets, sleep=slept.append) == "ok"
    assert slept == [0.1, 0.1, 1.0, 0.1, 2.0]  # rate-limit rounds did not use up the failure tries

    budgets = {"fail": Budget(2, Backoff(schedule_s=[1.0])), "limit": Budget(9, Backoff(schedule_s=[0.1]))}
    with pytest.raises(RetriesExhausted) as info:
        retry_call(
            lambda: (_ for _ in ()).throw(Flaky("fail")),
            retry_on=(Flaky,),
            kind_of=kind,
            budgets=budgets,
            sleep=slept.append,
        )
    assert info.value.attempts == 2 and isinstance(info.value.__cause__, Flaky)


def test_unlimited_tries_honour_a_server_delay_and_stop_early() -> None:
    stop = threading.Event()
    told: list[float] = []
    calls = [0]

    def call() -> None:
        calls[0] += 1
        if calls[0] == 3:
            stop.set()
        raise Flaky("down")

    with pytest.raises(RetryCancelled):
        retry_call(
            call,
            retry_on=(Flaky,),
            tries=None,
            backoff=Backoff(schedule_s=[0.001]),
            min_delay_s=lambda e: 0.002,
            on_retry=lambda e, delay: told.append(delay),
            stop=stop,
        )
    assert calls[0] == 3 and told == [0.002, 0.002, 0.002]
