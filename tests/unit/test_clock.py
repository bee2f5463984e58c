# SPDX-License-Identifier: MIT
"""The timer wheel and the virtual clock: ordering, cancellation, never early, errors loud."""

from __future__ import annotations

import random

import pytest

from ustack.clock import Timer, TimerWheel, VirtualClock


def is_active(timer: Timer) -> bool:
    """``timer.active`` read through a call: after ``assert t.active`` mypy keeps it narrowed
    to True across the ``t.cancel()`` that clears it."""
    return timer.active


def test_timers_fire_in_time_order_whatever_the_arming_order() -> None:
    clock = VirtualClock(start=0.0)
    fired: list[float] = []
    for delay in (5.0, 0.5, 3.0, 0.001, 2.0, 0.25):
        clock.call_later(delay, fired.append, delay)
    clock.advance(10.0)
    assert fired == [0.001, 0.25, 0.5, 2.0, 3.0, 5.0]


def test_timers_due_at_the_same_instant_fire_in_arming_order() -> None:
    clock = VirtualClock(start=0.0)
    fired: list[int] = []
    for i in range(10):
        clock.call_at(1.0, fired.append, i)
    clock.advance(1.0)
    assert fired == list(range(10))


def test_callback_sees_the_time_it_was_due() -> None:
    clock = VirtualClock(start=100.0)
    seen: list[float] = []
    clock.call_later(2.5, lambda: seen.append(clock.now()))
    clock.advance(1.0)
    assert seen == []
    assert clock.now() == 101.0
    clock.advance(5.0)
    assert seen == [pytest.approx(102.5, abs=1e-4)]
    assert clock.now() == 106.0


def test_cancelled_timer_never_fires_and_cancel_is_idempotent() -> None:
    clock = VirtualClock(start=0.0)
    fired: list[str] = []
    keep = clock.call_later(1.0, fired.append, "keep")
    drop = clock.call_later(1.0, fired.append, "drop")
    assert drop.active
    drop.cancel()
    drop.cancel()
    assert not is_active(drop)
    assert clock.wheel.count == 1
    clock.advance(2.0)
    assert fired == ["keep"]
    assert not keep.active
    keep.cancel()  # cancelling a fired timer is harmless
    assert clock.wheel.count == 0


def test_timer_cancelled_by_an_earlier_callback_of_the_same_slot_does_not_fire() -> None:
    clock = VirtualClock(start=0.0)
    fired: list[str] = []
    victims: list[Timer] = []
    clock.call_at(1.0, lambda: victims[0].cancel())
    victims.append(clock.call_at(1.0, fired.append, "cancelled"))
    clock.call_at(1.0, fired.append, "other")
    clock.advance(2.0)
    assert fired == ["other"]
    assert clock.wheel.count == 0


def test_timers_never_fire_early() -> None:
    rng = random.Random(7)
    clock = VirtualClock(start=1000.0)
    early: list[tuple[float, float]] = []
    fired = 0

    def check(when: float) -> None:
        nonlocal fired
        fired += 1
        if clock.now() < when:
            early.append((when, clock.now()))

    res = clock.wheel.resolution
    for _ in range(3000):
        when = clock.now() + rng.random() * rng.choice([1e-4, 1e-2, 1.0, 50.0])
        clock.call_at(when, check, when)
    # the awkward ones: a hair after a slot boundary, and exactly on one
    for k in range(1, 2000):
        boundary = 1000.0 + k * res
        for when in (boundary, boundary + 4e-12, boundary + 1e-10):
            clock.call_at(when, check, when)
    clock.advance(60.0)
    assert fired == 3000 + 3 * 1999
    assert early == []


def test_callback_rearming_until_its_deadline_terminates() -> None:
    """A common timer idiom: on firing, re-arm if the deadline has not been reached yet."""
    clock = VirtualClock(start=0.0)
    deadline = 0.5 + 4e-12  # just past a slot boundary
    rearmed = 0
    done: list[float] = []

    def on_timer() -> None:
        nonlocal rearmed
        if clock.now() < deadline:
            rearmed += 1
            if rearmed > 100:
                raise AssertionError("timer keeps firing before its deadline")
            clock.call_at(deadline, on_timer)
            return
        done.append(clock.now())

    clock.call_at(deadline, on_timer)
    clock.advance(1.0)
    assert rearmed == 0
    assert done and done[0] >= deadline


def test_many_timers_all_fire_once_in_order() -> None:
    rng = random.Random(1)
    clock = VirtualClock(start=0.0)
    fired: list[float] = []
    timers = []
    for _ in range(20000):
        when = round(rng.uniform(0.0, 100.0), 3)  # distinct slots except for true ties
        timers.append((when, clock.call_at(when, fired.append, when)))
    cancelled = {id(t) for _, t in timers[::3]}
    for _, t in timers[::3]:
        t.cancel()
    assert clock.wheel.count == 20000 - len(cancelled)
    clock.advance(101.0)
    expected = sorted(w for w, t in timers if id(t) not in cancelled)
    assert fired == expected
    assert clock.wheel.count == 0
    assert clock.wheel.next_deadline() is None


def test_wheel_next_deadline_skips_slots_emptied_by_cancellation() -> None:
    wheel = TimerWheel(resolution=1e-3)
    early = wheel.schedule(1.0, lambda: None)
    wheel.schedule(2.0, lambda: None)
    assert wheel.next_deadline() == pytest.approx(1.0)
    early.cancel()
    assert wheel.next_deadline() == pytest.approx(2.0)
    assert wheel.expire(1.5) == 0
    assert wheel.expire(2.0) == 1
    assert wheel.next_deadline() is None


def test_wheel_expire_reports_errors_and_keeps_going_with_a_handler() -> None:
    wheel = TimerWheel(resolution=1e-3)
    fired: list[str] = []
    errors: list[BaseException] = []
    wheel.schedule(1.0, lambda: 1 / 0)
    wheel.schedule(1.0, fired.append, "after")
    assert wheel.expire(1.0, lambda exc, timer: errors.append(exc)) == 2
    assert fired == ["after"]
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)


def test_run_until_stops_as_soon_as_the_condition_holds() -> None:
    clock = VirtualClock(start=0.0)
    flag: list[bool] = []
    clock.call_later(3.0, flag.append, True)
    clock.call_later(7.0, flag.append, True)
    assert clock.run_until(lambda: bool(flag), timeout=10.0)
    assert clock.now() == pytest.approx(3.0, abs=1e-4)
    assert len(flag) == 1  # the later timer has not run


def test_run_until_times_out_at_exactly_the_limit() -> None:
    clock = VirtualClock(start=0.0)
    fired: list[int] = []
    clock.call_later(2.0, fired.append, 1)
    clock.call_later(9.0, fired.append, 2)
    assert not clock.run_until(lambda: False, timeout=5.0)
    assert clock.now() == 5.0
    assert fired == [1]


def test_run_until_without_timeout_returns_when_nothing_is_left() -> None:
    clock = VirtualClock(start=0.0)
    assert not clock.run_until(lambda: False)
    assert clock.now() == 0.0


def test_call_soon_work_runs_before_time_moves() -> None:
    clock = VirtualClock(start=0.0)
    order: list[tuple[str, float]] = []
    clock.call_later(0.0, lambda: order.append(("timer", clock.now())))
    clock.call_soon(lambda: order.append(("soon", clock.now())))
    clock.call_soon_threadsafe(lambda: order.append(("threadsafe", clock.now())))
    clock.advance(1.0)
    assert [name for name, _ in order] == ["soon", "threadsafe", "timer"]
    assert all(t == 0.0 for _, t in order)


def test_advance_zero_runs_ready_callbacks_only() -> None:
    clock = VirtualClock(start=0.0)
    fired: list[str] = []
    clock.call_soon(fired.append, "soon")
    clock.call_later(1e-3, fired.append, "timer")
    clock.advance(0.0)
    assert fired == ["soon"]
    assert clock.now() == 0.0


def test_call_at_in_the_past_fires_now_not_never() -> None:
    clock = VirtualClock(start=50.0)
    fired: list[float] = []
    clock.call_at(10.0, lambda: fired.append(clock.now()))
    clock.advance(0.0)
    assert fired == [pytest.approx(50.0, abs=1e-9)]


def test_call_later_zero_fires_on_advance_zero_at_the_default_start() -> None:
    clock = VirtualClock()  # 1000.0: a start whose slot boundary is not exact in floats
    fired: list[str] = []
    clock.call_later(0.0, fired.append, "now")
    clock.advance(0.0)
    assert fired == ["now"]


def test_callback_exception_propagates_on_the_virtual_clock() -> None:
    clock = VirtualClock(start=0.0)

    def boom() -> None:
        raise RuntimeError("timer bug")

    clock.call_later(1.0, boom)
    with pytest.raises(RuntimeError, match="timer bug"):
        clock.advance(2.0)


def test_call_soon_exception_propagates() -> None:
    clock = VirtualClock(start=0.0)
    clock.call_soon(lambda: [][1])
    with pytest.raises(IndexError):
        clock.advance(0.0)


def test_other_timers_of_a_raising_slot_still_fire_later() -> None:
    clock = VirtualClock(start=0.0)
    fired: list[str] = []

    def boom() -> None:
        raise ValueError("boom")

    clock.call_at(1.0, boom)
    clock.call_at(1.0, fired.append, "same slot")
    clock.call_at(2.0, fired.append, "later")
    with pytest.raises(ValueError):
        clock.advance(3.0)
    clock.advance(3.0)
    assert fired == ["same slot", "later"]
    assert clock.wheel.count == 0


def test_call_soon_storm_is_reported() -> None:
    clock = VirtualClock(start=0.0)

    def again() -> None:
        clock.call_soon(again)

    clock.call_soon(again)
    with pytest.raises(RuntimeError, match="storm"):
        clock.run_ready(limit=1000)
